"""The core stays ruff- and mypy-clean (the house style); a failure names the file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (it comes with the dev extra)")
    return found


def test_ruff_finds_nothing() -> None:
    res = subprocess.run([_tool("ruff"), "check", "medcal_gui", "tests", "bench"], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_core_is_clean() -> None:
    res = subprocess.run([_tool("mypy"), "medcal_gui"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
