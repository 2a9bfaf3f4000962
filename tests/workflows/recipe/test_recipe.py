"""`medcal recipe` on the tiny model: the written size is the predicted one and within budget, the recipe file
rebuilds the same tensors through quantize_model, bad targets get a clear error, and the CLI end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from medcal_gui.core.errors import Cancelled, InputError
from medcal_gui.core.jobs import CancelToken
from medcal_gui.workflows.recipe.layout import kv_bytes, read_layout, tensor_bytes
from medcal_gui.workflows.recipe.recipe import run_recipe

TYPES = ["Q2_K", "Q4_K", "Q8_0", "F16"]


@pytest.fixture(scope="module")
def imatrix(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    out = tmp_path_factory.mktemp("recipe-imx") / "imatrix.gguf"
    text = sample_file.read_text(encoding="utf-8")
    cal = out.with_name("cal.txt")
    cal.write_text(text[: len(text) // 2], encoding="utf-8")
    compute_imatrix(tiny_model, [cal], n_ctx=64, n_chunks=3, threads=1, out=out)
    return out


@pytest.fixture(scope="module")
def heldout(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = sample_file.read_text(encoding="utf-8")
    out = tmp_path_factory.mktemp("recipe-held") / "held.txt"
    out.write_text(text[len(text) // 2:], encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recipes")  # shared: the candidates are made once


def _tensors(path: Path) -> dict[str, tuple[str, bytes]]:
    return {t.name: (t.tensor_type.name, bytes(t.data)) for t in gguf.GGUFReader(path).tensors}


def test_layout_predicts_a_written_files_size(tiny_model: Path) -> None:
    lay = read_layout(tiny_model)
    assert lay.size({}) == tiny_model.stat().st_size
    assert kv_bytes("general.file_type", 7) == lay.keys["general.file_type"]
    assert kv_bytes("general.name", "x" * 11) == 8 + 12 + 4 + 8 + 11
    assert tensor_bytes("Q4_K", (256, 10)) == 10 * 144 and tensor_bytes("Q8_0", (64, 2)) == 2 * 2 * 34
    with pytest.raises(ValueError):
        tensor_bytes("Q4_K", (640, 1))


@pytest.mark.parametrize("bpw", [3.0, 4.6, 7.0])
def test_written_size_is_the_predicted_size_and_within_budget(tiny_model: Path, imatrix: Path, folder: Path,
                                                             bpw: float) -> None:
    out = folder / f"r{bpw}.gguf"
    res = run_recipe(tiny_model, imatrix, out, target_bpw=bpw, types=TYPES, threads=1)
    assert out.stat().st_size == res.bytes == res.predicted_bytes
    assert res.bytes <= res.budget and res.optimal
    assert res.budget - res.bytes < 20_000  # the budget is used: no option change fits the rest
    written = {n: t for n, (t, _) in _tensors(out).items()}
    assert all(written[n] == t for n, t in res.choice.items())
    assert out.with_name(out.name + ".sha256").read_text().split()[0] == res.sha256
    assert out.with_name(out.name + ".manifest.json").is_file()
    doc = json.loads(out.with_name("r" + str(bpw) + ".recipe.json").read_text(encoding="utf-8"))
    assert doc["bytes"] == res.bytes and len(doc["tensors"]) == len(res.choice)
    assert out.with_name(f"r{bpw}.recipe.svg").read_text(encoding="utf-8").startswith("<svg ")


def test_smallest_possible_target_is_named_and_then_met_exactly(tiny_model: Path, imatrix: Path,
                                                               folder: Path) -> None:
    # far too small: refused before any candidate is made, naming a lower bound (the tensors alone)
    with pytest.raises(InputError, match="the tensors alone take at least") as e:
        run_recipe(tiny_model, imatrix, folder / "small.gguf", target_bytes=1000, types=TYPES, threads=1)
    floor = int(re.search(r"\((\d+) bytes, ", e.value.message).group(1))  # type: ignore[union-attr]
    # above that bound but below the header and the other tensors: refused after measuring, naming the exact size
    with pytest.raises(InputError, match="below the smallest file") as e:
        run_recipe(tiny_model, imatrix, folder / "small.gguf", target_bytes=floor, types=TYPES, threads=1)
    smallest = int(re.search(r"\((\d+) bytes, ", e.value.message).group(1))  # type: ignore[union-attr]
    assert smallest > floor
    res = run_recipe(tiny_model, imatrix, folder / "small.gguf", target_bytes=smallest, types=TYPES, threads=1)
    assert res.bytes == smallest == (folder / "small.gguf").stat().st_size
    assert set(res.choice.values()) == {"Q2_K"}
    with pytest.raises(InputError, match="below the smallest"):
        run_recipe(tiny_model, imatrix, folder / "small2.gguf", target_bytes=smallest - 1, types=TYPES, threads=1)
    assert not (folder / "small2.gguf").exists()


def test_recipe_file_rebuilds_the_same_tensors(tiny_model: Path, imatrix: Path, folder: Path) -> None:
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.quantize.tensor_types import read_tensor_type_file

    res = run_recipe(tiny_model, imatrix, folder / "mix.gguf", target_bpw=5.0, types=TYPES, threads=1)
    assert len(set(res.choice.values())) > 1  # a real mixture
    rules = read_tensor_type_file(res.recipe_file)
    assert len(rules) == len(res.choice) and all(r.pattern.startswith("^") and r.pattern.endswith("$")
                                                 for r in rules)
    again = folder / "again.gguf"
    quantize_model(tiny_model, again, res.file_type, imatrix=imatrix, threads=1, pure=True, tensor_types=rules)
    assert _tensors(again) == _tensors(res.out)
    # and each tensor is what a whole file of its type holds: what the candidates measured
    for t in set(res.choice.values()) - {"F16"}:
        whole = folder / f"whole-{t}.gguf"
        quantize_model(tiny_model, whole, t, imatrix=imatrix, threads=1, pure=True)
        tensors = _tensors(whole)
        for name, chosen in res.choice.items():
            if chosen == t:
                assert tensors[name] == _tensors(res.out)[name], name
    # measured candidates are deleted: only the reference (Q8_0) stays on disk
    left = sorted(p.name for p in (folder / f"{tiny_model.stem}.recipe-work" / "candidates").glob("*.gguf"))
    assert left == [f"{tiny_model.stem}-pure-Q8_0.gguf"]


def test_probes_weigh_classes_and_the_report_compares_stock(tiny_model: Path, imatrix: Path, heldout: Path,
                                                            folder: Path) -> None:
    res = run_recipe(tiny_model, imatrix, folder / "p.gguf", target_bpw=4.6, heldout=heldout, types=TYPES,
                     threads=1, n_ctx=64, probe_chunks=2, eval_chunks=2, compare=["Q4_K_M"])
    assert res.probes is not None and len(res.probes.probes) == 6 + 2  # six classes, two bands of one layer
    assert all(w >= 0 for w in res.probes.class_weight.values())
    assert res.kld is not None and res.kld["kld_mean"] > 0 and res.predicted_kld is not None
    assert [s["type"] for s in res.stock] == ["Q4_K_M"] and res.stock[0]["kld_mean"] > 0
    md = (folder / "p.recipe.md").read_text(encoding="utf-8")
    assert "Q4_K_M" in md and "Probes" in md


def test_a_ladder_of_the_same_model_serves_the_stock_comparison(tiny_model: Path, imatrix: Path, heldout: Path,
                                                                folder: Path) -> None:
    from medcal_gui.workflows.ladder.ladder import run_ladder

    lad = run_ladder(tiny_model, heldout, imatrix=imatrix, types=["Q4_K_M"], threads=1, out_dir=folder / "lad",
                     n_ctx=64, eval_chunks=2, reps=1)
    res = run_recipe(tiny_model, imatrix, folder / "l.gguf", target_bpw=4.6, heldout=heldout, types=TYPES,
                     threads=1, n_ctx=64, probe_chunks=2, eval_chunks=2, compare=["Q4_K_M"], ladder=folder / "lad")
    s = res.stock[0]
    assert s["from_ladder"] and s["file"] == str(lad.rungs[0].file) and s["kld_mean"] == lad.rungs[0].kld_mean


def test_cancel_leaves_no_output(tiny_model: Path, imatrix: Path, folder: Path) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_recipe(tiny_model, imatrix, folder / "c.gguf", target_bpw=5.0, types=TYPES, threads=1, cancel=token)
    assert not (folder / "c.gguf").exists()


def test_bad_types_and_targets_are_clear(tiny_model: Path, imatrix: Path, folder: Path) -> None:
    with pytest.raises(InputError, match="Unknown tensor type 'Q9_9'"):
        run_recipe(tiny_model, imatrix, folder / "x.gguf", target_bpw=5.0, types=["Q9_9"])
    with pytest.raises(InputError, match="one of them"):
        run_recipe(tiny_model, imatrix, folder / "x.gguf", types=TYPES)
    with pytest.raises(InputError, match="does not exist"):
        run_recipe(tiny_model, folder / "none.gguf", folder / "x.gguf", target_bpw=5.0, types=TYPES)


def test_cli_end_to_end(tiny_model: Path, imatrix: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MEDCAL_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "cli.gguf"
    cmd = [sys.executable, "-m", "medcal_gui", "recipe", "--model", str(tiny_model), "--imatrix", str(imatrix),
           "--target-size", "700KB", "--types", "Q2_K,Q4_K,Q8_0", "-o", str(out), "-t", "1", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert doc["bytes"] == out.stat().st_size <= 700_000 and doc["budget"] == 700_000
    assert Path(doc["outputs"]["tensor_type_file"]).is_file()
    small = [sys.executable, "-m", "medcal_gui", "recipe", "--model", str(tiny_model), "--imatrix", str(imatrix),
             "--target-size", "10KB", "--types", "Q2_K,Q8_0", "-o", str(tmp_path / "small.gguf"), "-t", "1"]
    bad = subprocess.run(small, capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert "below the smallest file these types can make" in bad.stderr and "Traceback" not in bad.stderr
