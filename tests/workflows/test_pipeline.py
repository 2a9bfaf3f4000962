"""`medcal pipeline` on the tiny model: the GUI's workflow, defaults and names; nothing partial on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest

from medcal_gui.cli.main import main
from medcal_gui.core.errors import Cancelled
from medcal_gui.core.fsutil import sha256_file
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.dataset.holdout import HELDOUT_FRACTION, calibration_text, heldout_text
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.variants import get_variant
from medcal_gui.workflows.pipeline import run_pipeline

REPO = Path(__file__).resolve().parents[2]


def _field(reader: gguf.GGUFReader, key: str) -> str:
    f = reader.fields[key]
    return bytes(f.parts[f.data[0]]).decode()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_pipeline_uses_the_guis_split_names_and_text(tiny_model: Path, sample_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = main(["pipeline", "--narratives", str(sample_file), "--model", str(tiny_model), "--type", "Q4_K_M",
               "-d", str(out), "--variant", "night_sentinel", "--ctx", "128", "--chunks", "2", "--threads", "2"])
    assert rc == 0
    stem = f"{tiny_model.stem}-Q4_K_M"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.gguf", f"{stem}.gguf.sha256", f"{stem}.gguf.manifest.json", f"{stem}.imatrix.gguf",
         f"{stem}.calibration.txt", f"{stem}.heldout.txt", "pipeline_summary.json"])
    # the same records held out and the same text as the GUI's quantize pane would use
    recs = load_dataset([sample_file]).records
    v = get_variant("night_sentinel")
    gui = calibration_text(recs, v, "seed")
    n_held = round(len(recs) * HELDOUT_FRACTION)
    assert gui.held_out == n_held == 8 and gui.records == 30
    calib = out / f"{stem}.calibration.txt"
    assert calib.read_text(encoding="utf-8") == gui.text
    assert calib.read_text(encoding="utf-8").count("[NIGHT SENTINEL MONITORING]") == 30
    assert (out / f"{stem}.heldout.txt").read_text(encoding="utf-8") == heldout_text(recs, v, "seed")[0]
    summary = json.loads((out / "pipeline_summary.json").read_text())
    assert summary["records"] == 30 and summary["held_out"] == 8
    assert summary["imatrix"]["entries"] > 0 and summary["imatrix"]["chunks"] == 2
    reader = gguf.GGUFReader(out / f"{stem}.gguf")
    assert "quantize.imatrix.file" in reader.fields
    assert _field(reader, "medcal.calibration.sha256") == sha256_file(calib) == gui.sha256
    assert _field(reader, "medcal.calibration.variant") == "night_sentinel"


def test_cancel_during_quantize_leaves_nothing_of_this_run(tiny_model: Path, sample_file: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    token = CancelToken()
    seen: set[str] = set()

    def progress(p: Progress) -> None:
        seen.add(p.stage)
        if p.stage.startswith("quantize"):  # the formatted set and the imatrix are on disk by now (and the
            # quantize child's partial output once it writes)
            assert len([f for f in out.iterdir() if not f.name.startswith(".medcal-partial-")]) == 3
            token.cancel()

    with pytest.raises(Cancelled, match="every file this run wrote was removed"):
        run_pipeline([sample_file], tiny_model, "Q4_K_M", out, n_ctx=128, n_chunks=1, threads=2,
                     progress=progress, cancel=token)
    assert "imatrix" in seen
    assert not out.exists()  # the folder this run created goes too (it was left behind, empty)


def test_ctrl_c_restores_the_earlier_run_byte_for_byte(tiny_model: Path, sample_file: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline([sample_file], tiny_model, "Q4_K_M", out, n_ctx=128, n_chunks=1, threads=2, hold_out=False)
    before = _snapshot(out)
    assert len(before) == 6  # no held-out file when nothing is held out
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "medcal_gui", "pipeline", "--narratives", str(sample_file),
                             "--model", str(tiny_model), "--type", "Q4_K_M", "-d", str(out), "--ctx", "128",
                             "--chunks", "40", "--threads", "1"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    lines = []
    t0 = time.monotonic()
    for line in proc.stderr:  # plain progress lines (not a tty)
        lines.append(line)
        if line.startswith("imatrix:") and "/40 chunks" in line:
            break
        assert time.monotonic() - t0 < 300, "".join(lines)
    assert (out / f"{tiny_model.stem}-Q4_K_M.heldout.txt").is_file()  # this run's formatted set is written
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "every file this run wrote was removed" in err and "Traceback" not in err
    assert _snapshot(out) == before  # nothing partial, and the earlier run as it was


def test_pipeline_refuses_unknown_type_before_any_work(tiny_model: Path, sample_file: Path,
                                                        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    rc = main(["pipeline", "--narratives", str(sample_file), "--model", str(tiny_model), "--type", "Q9_Z",
               "-d", str(out)])
    assert rc == 2
    assert "Q9_Z" in capsys.readouterr().err
    assert not out.exists()
