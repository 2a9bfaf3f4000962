"""Calibration A/B on the tiny model (fast), and the demo model's headline result (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.core.errors import InputError, OutputError
from medcal_gui.core.jobs import Progress
from medcal_gui.dataset.formatting import format_dataset, format_original
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.variants import get_variant
from medcal_gui.workflows.compare_calibrations import NO_IMATRIX, compare_calibrations


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
    assert res.plot == tmp_path / "out" / "comparison.svg"
    svg = res.plot.read_text(encoding="utf-8")
    assert svg.startswith("<svg ") and all(f">{r.name}</text>" in svg for r in res.rows)
    assert data["plot"] == str(res.plot)


def test_duplicate_calibration_names_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the patient " * 200, encoding="utf-8")
    b.write_text("the nurse " * 200, encoding="utf-8")
    with pytest.raises(InputError, match="unique"):
        compare_calibrations(tiny_model, "Q4_0", a, [("x", b), ("x", b)], tmp_path / "o")


@pytest.mark.parametrize("how", ["same path", "other path to it", "same content", "contains it"])
def test_heldout_text_cannot_be_a_calibration(tiny_model: Path, tmp_path: Path, how: str) -> None:
    held = tmp_path / "held.txt"
    held.write_text("The patient reports chest pain since the morning.\n" * 20, encoding="utf-8")
    cal = {
        "same path": held,
        "other path to it": tmp_path / "." / "held.txt",
        "same content": tmp_path / "copy.txt",
        "contains it": tmp_path / "bigger.txt",
    }[how]
    if how == "same content":
        cal.write_bytes(held.read_bytes())
    elif how == "contains it":
        cal.write_text("Other records first.\n" + held.read_text(encoding="utf-8") + "More after.\n",
                       encoding="utf-8")
    with pytest.raises(InputError, match="never saw"):
        compare_calibrations(tiny_model, "Q4_0", held, [("a", cal)], tmp_path / "o")
    assert not (tmp_path / "o").exists()  # refused before any work or output


def test_outputs_are_checked_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    held, cal = tmp_path / "held.txt", tmp_path / "cal.txt"
    held.write_text("the patient is well " * 100, encoding="utf-8")
    cal.write_text("the nurse is kind " * 100, encoding="utf-8")
    out = tmp_path / "o"
    (out / "comparison.svg").mkdir(parents=True)  # a folder where a figure would go
    with pytest.raises(OutputError, match="comparison.svg is a folder"):
        compare_calibrations(tiny_model, "Q4_0", held, [("a", cal)], out)
    assert sorted(p.name for p in out.iterdir()) == ["comparison.svg"]


def test_results_are_written_even_when_the_figure_fails(tiny_model: Path, tmp_path: Path) -> None:
    held, cal = tmp_path / "held.txt", tmp_path / "cal.txt"
    held.write_text("the patient is well and walks home today " * 60, encoding="utf-8")
    cal.write_text("the nurse checks the chart every morning " * 60, encoding="utf-8")
    out = tmp_path / "o"

    def progress(p: Progress) -> None:
        if p.stage == "eval":  # after the up-front checks: something takes the figure's name meanwhile
            (out / "comparison.svg").mkdir(exist_ok=True)

    res = compare_calibrations(tiny_model, "Q4_0", held, [("a", cal)], out, n_ctx=64, imatrix_chunks=2,
                               eval_chunks=2, threads=2, progress=progress)
    assert res.plot is None and any("comparison.svg was not written" in w for w in res.warnings)
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in data["rows"]] == ["a"] and data["plot"] is None
    assert (out / "comparison.md").read_text(encoding="utf-8").startswith("| rank |")
