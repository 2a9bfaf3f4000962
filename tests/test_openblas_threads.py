"""medcal_gui/__init__.py: importing the package keeps OpenBLAS from starting worker threads (medcal does no BLAS
work; each worker spun about 0.1 s after numpy was imported, on the cores llama.cpp needs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COUNT = "import os, numpy; print(len(os.listdir('/proc/self/task')))"


def _threads(code: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux's /proc and at least 2 cores (OpenBLAS starts no worker on one)")
def test_importing_medcal_gui_first_starts_no_openblas_workers() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    assert _threads(COUNT, env) > 1  # numpy alone: OpenBLAS's workers
    assert _threads("import medcal_gui; " + COUNT, env) == 1
    # a user's own setting is kept
    out = subprocess.run([sys.executable, "-c", "import medcal_gui, os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
                         env={**env, "OPENBLAS_NUM_THREADS": "2"}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
