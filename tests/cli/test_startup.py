"""The command line starts light: building the parser imports none of the heavy libraries, so a short
command (and the quantize child's parent) pays only for what it uses."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "gguf", "PySide6", "llama_cpp", "matplotlib", "torch")


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = ("import sys; from medcal_gui.cli.main import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
