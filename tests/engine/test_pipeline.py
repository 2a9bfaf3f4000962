"""`medcal pipeline` on the tiny model: every artefact lands in OUTDIR and the quant carries provenance."""

from __future__ import annotations

import json
from pathlib import Path

import gguf

from medcal_gui.cli import main
from medcal_gui.fsutil import sha256_file


def test_pipeline_leaves_every_artefact_and_provenance(tiny_model: Path, sample_file: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = main(["pipeline", "--narratives", str(sample_file), "--model", str(tiny_model), "--type", "Q4_K_M",
               "-d", str(out), "--variant", "night_sentinel", "--ctx", "128", "--threads", "2"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    quant = out / f"{tiny_model.stem}-Q4_K_M.gguf"
    for expected in ("medgemma_calibration_imatrix_formatted.txt", "calibration_dataset_log.json",
                     "README_CALIBRATION_DATASET.md", "imatrix.gguf", quant.name, quant.name + ".sha256",
                     quant.name + ".manifest.json", "pipeline_summary.json"):
        assert expected in names
    assert not [n for n in names if n.startswith(".medcal-partial-")]
    calib = out / "medgemma_calibration_imatrix_formatted.txt"
    assert calib.read_text(encoding="utf-8").count("[NIGHT SENTINEL MONITORING]") == 38
    summary = json.loads((out / "pipeline_summary.json").read_text())
    assert summary["records"] == 38
    assert summary["imatrix"]["entries"] > 0
    reader = gguf.GGUFReader(quant)
    fields = {k: f for k, f in reader.fields.items()}
    assert "quantize.imatrix.file" in fields
    sha_field = fields["medcal.calibration.sha256"]
    assert bytes(sha_field.parts[sha_field.data[0]]).decode() == sha256_file(calib)
    var_field = fields["medcal.calibration.variant"]
    assert bytes(var_field.parts[var_field.data[0]]).decode() == "night_sentinel"


def test_pipeline_refuses_unknown_type_before_any_work(tiny_model: Path, sample_file: Path,
                                                        tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    rc = main(["pipeline", "--narratives", str(sample_file), "--model", str(tiny_model), "--type", "Q9_Z",
               "-d", str(out)])
    assert rc == 2
    assert "Q9_Z" in capsys.readouterr().err
    assert not out.exists()
