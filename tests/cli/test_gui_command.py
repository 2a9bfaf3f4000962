"""`medcal gui --screenshot DIR` (the `gui` command) in a fresh process: one PNG per pane at 1280x720 (the
bindings' reference counts: tests/ui/test_bindings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

from medcal_gui.ui.screenshots import SHOTS, SIZE

REPO = Path(__file__).resolve().parents[2]


def test_gui_screenshot_writes_one_png_per_pane(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDCAL_HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONPATH=str(REPO))
    out = tmp_path / "shots"
    proc = subprocess.run([sys.executable, "-m", "medcal_gui", "gui", "--screenshot", str(out)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in SHOTS:
        img = QImage(str(out / name))
        assert not img.isNull(), name
        assert (img.width(), img.height()) == SIZE, name
    assert sorted(p.name for p in out.iterdir()) == sorted(SHOTS)
