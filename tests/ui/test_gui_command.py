"""`medcal gui --screenshot DIR` in a fresh process, and the emit work-around it relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from medcal_gui.ui.qtcompat import emit
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


class _Source(QObject):
    sig = Signal(object)


def test_emit_keeps_the_payloads_references_balanced() -> None:
    """Mortal payloads (on every Python): the references a signal takes are given back, none is dropped."""
    src = _Source()
    got: list[object] = []
    src.sig.connect(got.append)
    payloads = [object(), [1, 2], "a string built at run time ".strip() + str(id(src)), int("1" * 30)]
    before = [sys.getrefcount(p) for p in payloads]
    for _ in range(500):
        for i in range(len(payloads)):
            emit(src.sig, payloads[i])
    assert len(got) == 500 * len(payloads)
    got.clear()
    assert [sys.getrefcount(p) for p in payloads] == before


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="True and False are immortal from Python 3.12 on: their "
                    "reference counts never change, so a dropped reference is harmless and cannot be observed")
def test_emit_keeps_the_references_to_true_and_false_balanced() -> None:
    """The bindings' emit returns True without a reference (PySide6 6.12.0): `emit` must give it back, or
    CPython 3.11 aborts with bool_dealloc after a few thousand emits."""
    src = _Source()
    got: list[object] = []
    src.sig.connect(got.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(3000):  # more than True's references in a small process: a leak would abort here
        emit(src.sig, True)
        emit(src.sig, False)
    got.clear()
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert abs(after[0] - before[0]) <= 2 and abs(after[1] - before[1]) <= 2
