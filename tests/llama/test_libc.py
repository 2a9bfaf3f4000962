"""libc's two calls, bound in llama/ with the rest of the ctypes edge, light enough for the quantize child."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medcal_gui.llama.libc import start_writeback


def test_start_writeback_on_a_written_file_is_quiet(tmp_path: Path) -> None:
    f = tmp_path / "out.bin"
    with open(f, "wb") as fh:
        fh.write(b"x" * 1_000_000)
        fh.flush()
        start_writeback(fh.fileno(), 0, 1_000_000)
    assert f.stat().st_size == 1_000_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_child_asks_the_kernel_to_die_with_its_parent_and_imports_nothing_heavy() -> None:
    code = ("import signal, sys; from medcal_gui.llama.libc import set_parent_death_signal; "
            "ok = set_parent_death_signal(signal.SIGKILL); "
            "print(ok, 'numpy' in sys.modules, 'llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.split() == ["True", "False", "False"]
