"""Calibration A/B on the tiny model (fast), and the demo model's headline result (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.dataset.formatting import format_dataset, format_original
from medcal_gui.dataset.loader import load_dataset
from medcal_gui.dataset.variants import get_variant
from medcal_gui.engine.compare import NO_IMATRIX, compare_calibrations
from medcal_gui.errors import InputError


def split_samples(sample_file: Path, folder: Path) -> dict[str, Path]:
    """Every 4th record held out (Gemma layout, all three variants); the rest as calibration texts."""
    records = load_dataset([sample_file]).records
    cal = [r for i, r in enumerate(records, 1) if i % 4]
    held = [r for i, r in enumerate(records, 1) if i % 4 == 0]
    files = {
        "seed": format_dataset(cal, get_variant("quantization_calibration"), "seed"),
        "plain": "".join(format_original(r) for r in cal),
        "heldout": "".join(format_dataset(held, get_variant(v), "gemma")
                           for v in ("quantization_calibration", "clinical_analysis", "night_sentinel")),
    }
    out = {}
    for name, text in files.items():
        out[name] = folder / f"{name}.txt"
        out[name].write_text(text, encoding="utf-8")
    return out


def test_compare_ranks_quants_and_writes_the_tables(tiny_model: Path, sample_file: Path, tmp_path: Path) -> None:
    f = split_samples(sample_file, tmp_path)
    res = compare_calibrations(tiny_model, "IQ3_XXS", f["heldout"], [("seed", f["seed"])],
                               tmp_path / "out", include_no_imatrix=True, n_ctx=64, imatrix_chunks=4,
                               eval_chunks=3, threads=2)
    assert [r.eval.kld_mean for r in res.rows] == sorted(r.eval.kld_mean for r in res.rows)
    assert {r.name for r in res.rows} == {"seed", NO_IMATRIX}
    base = next(r for r in res.rows if r.name == NO_IMATRIX)
    assert base.imatrix == "uniform"  # IQ3_XXS cannot be made without one
    assert all(r.eval.kld_mean > 0 and r.quant.is_file() for r in res.rows)
    assert (tmp_path / "out" / "seed.imatrix.gguf").is_file()
    md = (tmp_path / "out" / "comparison.md").read_text(encoding="utf-8")
    ranked = [ln for ln in md.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(ranked) == 2 and ranked[0].startswith(f"| 1 | {res.rows[0].name} |")
    data = json.loads((tmp_path / "out" / "comparison.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in data["rows"]] == [r.name for r in res.rows]
    assert data["rows"][0]["kld_mean"] == res.rows[0].eval.kld_mean
    assert res.plot is not None and res.plot.stat().st_size > 1000


def test_heldout_text_cannot_be_a_calibration(tiny_model: Path, tmp_path: Path) -> None:
    t = tmp_path / "t.txt"
    t.write_text("the patient " * 200, encoding="utf-8")
    with pytest.raises(InputError, match="unique"):
        compare_calibrations(tiny_model, "Q4_0", t, [("a", t), ("a", t)], tmp_path / "o")
