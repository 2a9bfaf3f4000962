"""The recipe search against the stock types at equal size, on the demo model (figures in one run).

Texts: the sample narratives split by record as the demo tests split them (every 4th record held out, the rest
calibrate: the importance matrix never sees a held-out record). The held-out records are split again: those
at odd multiples of 4 are the probe text (the recipe's probes calibrate their weights on it), those at
multiples of 8 the test text, on which every figure below is measured: the probes never see it either.

1. imatrix from the calibration text; stock Q4_K_M and Q3_K_M with it (one "ladder rung" each: quantize +
   scoring pass; the rung's cost is what the search's cost is divided by).
2. `run_recipe` at Q4_K_M's size, then at Q3_K_M's (the second reuses the candidates, errors and probes).
3. One scoring pass on the test text for the stock files and the recipes: mean KLD, and the change in %.
4. With --llama-quantize: stock `llama-quantize --pure --imatrix I --tensor-type-file RECIPE BASE OUT TYPE`
   rebuilds each recipe; compared tensor for tensor (type, shape, data bytes) and byte for byte.

    MEDCAL_CACHE=/work/cache/medcal-test-cache python bench/bench_recipe.py \
        --llama-quantize /work/cache/llama-tools/bin/llama-quantize --out bench_recipe.json

The machine is shared: times are noisy, the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

STOCK = ["Q4_K_M", "Q3_K_M"]


def texts(work: Path) -> tuple[Path, Path, Path]:
    from medcal_gui.core.resources import samples_dir
    from medcal_gui.dataset.export import export_dataset
    from medcal_gui.dataset.formatting import format_original
    from medcal_gui.dataset.reading.loader import load_dataset
    from medcal_gui.dataset.variants import get_variant

    sample = sorted(samples_dir().glob("*.txt"))[0]
    records = load_dataset([sample]).records
    parts = {"calibration": [r for i, r in enumerate(records, 1) if i % 4],
             "probe": [r for i, r in enumerate(records, 1) if i % 8 == 4],
             "test": [r for i, r in enumerate(records, 1) if i % 8 == 0]}
    out: dict[str, Path] = {}
    variant = get_variant("quantization_calibration")
    for name, recs in parts.items():
        raw = work / f"{name}_narratives.txt"
        raw.write_text("".join(format_original(r) for r in recs), encoding="utf-8")
        out[name] = work / f"{name}.txt"
        export_dataset([raw], out=out[name], variant=variant, layout="seed" if name == "calibration" else "gemma")
    return out["calibration"], out["probe"], out["test"]


def perturbed(model: Path, rel: float, out: Path) -> Path:
    """A copy of `model` whose 2-D F16 weights get Gaussian noise of `rel` x each tensor's standard deviation.

    The demo model is Gemma 3 270M's Q4_K_M dequantized to F16: its weights sit exactly on the Q4_K/Q5_0/Q6_K/
    Q8_0 grids the original file used, so re-quantizing a tensor to its original type loses nothing and any
    search that finds those types looks lossless. The noise takes the weights off every grid, as a model
    converted from real BF16/F32 weights is."""
    import shutil

    import gguf
    import numpy as np

    shutil.copyfile(model, out)
    rng = np.random.default_rng(0)
    r = gguf.GGUFReader(out, "r+")
    for t in r.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F16 or len(t.shape) < 2 or "_norm" in t.name:
            continue
        data = t.data.reshape(-1, int(t.shape[0]))
        sd = float(np.std(data[:: max(1, data.shape[0] // 512)].astype(np.float32)))
        for r0 in range(0, data.shape[0], 4096):
            block = data[r0:r0 + 4096].astype(np.float32)
            data[r0:r0 + 4096] = (block + rng.normal(0.0, rel * sd, block.shape)).astype(np.float16)
    del r
    return out


def same_tensors(a: Path, b: Path) -> dict[str, Any]:
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
    diff = [n for n in ta if n not in tb or ta[n].tensor_type != tb[n].tensor_type
            or list(ta[n].shape) != list(tb[n].shape) or bytes(ta[n].data) != bytes(tb[n].data)]
    return {"tensors": len(ta), "same": len(ta) - len(diff) if set(ta) == set(tb) else 0, "differ": diff[:5],
            "bytes_identical": a.read_bytes() == b.read_bytes(), "sizes": [a.stat().st_size, b.stat().st_size]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="default: the demo model")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--imatrix-chunks", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=256,
                    help="tokens per chunk when scoring (the texts are short: 256 gives the test text 4 chunks)")
    ap.add_argument("--probe-chunks", type=int, default=None, help="default: resources/recipe.toml")
    ap.add_argument("--llama-quantize", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    ap.add_argument("--perturb", type=float, default=0.0, metavar="REL",
                    help="add Gaussian noise of REL x each weight tensor's sd to a copy of the model first")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from medcal_gui.calibrate.imatrix import compute_imatrix
    from medcal_gui.evaluate.evaluate import evaluate
    from medcal_gui.gguf_files.demo_model import prepare_demo_model
    from medcal_gui.quantize.quantize import quantize_model
    from medcal_gui.workflows.recipe.recipe import run_recipe

    model = a.model or prepare_demo_model()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    work.mkdir(parents=True, exist_ok=True)
    cal, probe, test = texts(work)
    if a.perturb:
        model = perturbed(model, a.perturb, work / f"{model.stem}-perturbed.gguf")
    doc: dict[str, Any] = {"model": str(model), "threads": a.threads, "machine": "shared (2 cores, other agents)",
                           "perturb": a.perturb}
    t0 = time.monotonic()
    imx = work / "imatrix.gguf"
    compute_imatrix(model, [cal], n_ctx=512, n_chunks=a.imatrix_chunks, threads=a.threads, out=imx)
    doc["imatrix_s"] = time.monotonic() - t0
    stock: dict[str, Path] = {}
    rung_s: dict[str, float] = {}
    for t in STOCK:
        stock[t] = work / f"stock-{t}.gguf"
        for p in (stock[t], stock[t].with_name(stock[t].name + ".sha256"),
                  stock[t].with_name(stock[t].name + ".manifest.json")):
            p.unlink(missing_ok=True)
        t1 = time.monotonic()
        quantize_model(model, stock[t], t, imatrix=imx, threads=a.threads)
        q_s = time.monotonic() - t1
        t1 = time.monotonic()
        evaluate(model, [stock[t]], test, n_ctx=a.ctx, threads=a.threads)
        rung_s[t] = q_s + (time.monotonic() - t1)
        print(f"{t}: {stock[t].stat().st_size} bytes, rung {rung_s[t]:.1f} s", flush=True)
    doc["rung_s"] = rung_s
    recipes: dict[str, Any] = {}
    for t in STOCK:
        out = work / f"recipe-at-{t}.gguf"
        t1 = time.monotonic()
        res = run_recipe(model, imx, out, target_bytes=stock[t].stat().st_size, heldout=probe, threads=a.threads,
                         n_ctx=a.ctx, probe_chunks=a.probe_chunks, compare=[])
        wall = time.monotonic() - t1
        search = wall - res.seconds.get("compare", 0.0)
        recipes[t] = {"file": str(out), "bytes": res.bytes, "predicted_bytes": res.predicted_bytes,
                      "budget": res.budget, "bpw": res.bpw, "optimal": res.optimal, "predicted_kld": res.predicted_kld,
                      "probe_text_kld": res.kld["kld_mean"] if res.kld else None, "seconds": res.seconds,
                      "search_s": search, "search_rungs": search / rung_s[t], "recipe_file": str(res.recipe_file),
                      "file_type": res.file_type, "by_class": None}
        from medcal_gui.workflows.recipe.recipe_report import by_class

        keys = ("class", "bytes", "bpw", "types", "weight")
        recipes[t]["by_class"] = [{k: r[k] for k in keys} for r in by_class(res)]
        if res.probes:
            recipes[t]["probes"] = res.probes.to_json()
        print(f"recipe at {t}: {res.bytes} bytes (budget {res.budget}, predicted {res.predicted_bytes}), "
              f"search {search:.0f} s = {search / rung_s[t]:.1f} rungs", flush=True)
    files = [stock[t] for t in STOCK] + [Path(recipes[t]["file"]) for t in STOCK]
    ev = evaluate(model, files, test, n_ctx=a.ctx, threads=a.threads)
    k = {f.name: m.kld_mean for f, m in zip(files, ev.models, strict=True)}
    doc["test_chunks"] = ev.chunks
    for t in STOCK:
        r, s = k[f"recipe-at-{t}.gguf"], k[stock[t].name]
        recipes[t].update({"kld_mean": r, "stock_kld_mean": s, "stock_bytes": stock[t].stat().st_size,
                           "kld_change_pct": 100 * (r / s - 1)})
        print(f"at {t}'s size: recipe KLD {r:.5f} vs stock {s:.5f}: {100 * (r / s - 1):+.1f} %", flush=True)
    doc["recipes"] = recipes
    if a.llama_quantize:
        rebuilt: dict[str, Any] = {}
        for t in STOCK:
            r = recipes[t]
            out = work / f"llama-quantize-{t}.gguf"
            subprocess.run([str(a.llama_quantize), "--pure", "--imatrix", str(imx), "--tensor-type-file",
                            r["recipe_file"], str(model), str(out), r["file_type"]], check=True,
                           capture_output=True)
            rebuilt[t] = same_tensors(Path(r["file"]), out)
            print(f"llama-quantize rebuild at {t}: {rebuilt[t]['same']}/{rebuilt[t]['tensors']} tensors identical, "
                  f"byte-identical file: {rebuilt[t]['bytes_identical']}", flush=True)
        doc["llama_quantize"] = rebuilt
    text = json.dumps(doc, indent=2)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
