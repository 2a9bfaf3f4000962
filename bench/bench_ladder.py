"""The quant ladder's costs and its speed figures (ratios measured in one run; not a timed test).

1. Wall time: `run_ladder` on the demo model with 4 rungs against the sum of the same steps run alone (one
   imatrix, one base pass, per rung one quantize, one scoring pass and one speed run, plus the base's speed
   run). Each side gets a fresh evaluation cache, so each really runs its base pass. Target: <= 1.05x.
   `--wall-rounds N` repeats the pair in fresh folders, alternating which side goes first, and reports the
   ratio of the sums (single runs vary by +-15 % on a VM whose host steals time).
2. Speed agreement with llama-bench (`llama-bench -m M -p 512 -n 128 -r R -t T -o json`, built from the
   pinned sdist: `cmake --build BUILD --target llama-bench`): for the demo F16 and its Q4_K_M rung, the two
   are run back to back, alternating, `--rounds` times; reported: each side's pp512/tg128 (median of the
   rounds' means) and the ratio. Target: within 10 %.

    python bench/bench_ladder.py --model "$(medcal demo-model)" --calibration CAL.txt --heldout HELD.txt \
        --llama-bench /work/cache/llama-tools/build/bin/llama-bench --threads 2 --out bench_ladder.json

On a shared machine the figures are noisy: compare the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

TYPES = ["Q8_0", "Q4_K_M", "IQ4_XS", "IQ3_XXS"]


def _fresh_cache(root: Path, name: str) -> None:
    d = root / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    os.environ["MEDCAL_CACHE"] = str(d)


def steps_alone(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from medcal_gui.calibrate.imatrix import compute_imatrix
    from medcal_gui.evaluate.evaluate import evaluate
    from medcal_gui.evaluate.speed import measure_speed
    from medcal_gui.quantize.quantize import quantize_model

    _fresh_cache(work, "cache-alone")
    t: dict[str, float] = {}
    t0 = time.monotonic()
    imx = work / "alone" / "imatrix.gguf"
    compute_imatrix(a.model, [a.calibration], n_ctx=512, n_chunks=a.imatrix_chunks, threads=a.threads, out=imx)
    t["imatrix"] = time.monotonic() - t0
    t0 = time.monotonic()
    evaluate(a.model, [], a.heldout, threads=a.threads, n_chunks=a.eval_chunks)
    t["base_pass"] = time.monotonic() - t0
    t0 = time.monotonic()
    measure_speed(a.model, threads=a.threads, reps=a.reps)
    t["base_speed"] = time.monotonic() - t0
    for q in TYPES:
        out = work / "alone" / f"{q}.gguf"
        t0 = time.monotonic()
        quantize_model(a.model, out, q, imatrix=imx if q != "Q8_0" else None, threads=a.threads)
        t[f"{q}_quantize"] = time.monotonic() - t0
        t0 = time.monotonic()
        evaluate(a.model, [out], a.heldout, threads=a.threads, n_chunks=a.eval_chunks)
        t[f"{q}_eval"] = time.monotonic() - t0
        t0 = time.monotonic()
        measure_speed(out, threads=a.threads, reps=a.reps)
        t[f"{q}_speed"] = time.monotonic() - t0
    return {"steps_s": t, "sum_s": sum(t.values())}


def ladder_whole(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from medcal_gui.workflows.ladder.ladder import run_ladder

    _fresh_cache(work, "cache-ladder")
    t0 = time.monotonic()
    res = run_ladder(a.model, a.heldout, calibration=[a.calibration], types=TYPES, threads=a.threads,
                     out_dir=work / "ladder", eval_chunks=a.eval_chunks, imatrix_chunks=a.imatrix_chunks,
                     reps=a.reps)
    wall = time.monotonic() - t0
    return {"wall_s": wall, "rungs": {r.type: str(r.file) for r in res.rungs},
            "recommendation": res.recommendation.get("text")}


def llama_bench(exe: Path, model: Path, threads: int, reps: int) -> dict[str, float]:
    """llama-bench's figures, with the CPU's extra buffer types (AMX, repacking) on or off as medcal has them."""
    from medcal_gui.llama.cpu_quirks import extra_bufts_usable

    out = subprocess.run([str(exe), "-m", str(model), "-p", "512", "-n", "128", "-r", str(reps), "-t", str(threads),
                          "--repack", "1" if extra_bufts_usable() else "0", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    pp = next(r for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return {"pp": pp["avg_ts"], "pp_sd": pp["stddev_ts"], "tg": tg["avg_ts"], "tg_sd": tg["stddev_ts"]}


def ours(model: Path, threads: int, reps: int) -> dict[str, float]:
    from medcal_gui.evaluate.speed import measure_speed

    s = measure_speed(model, threads=threads, reps=reps)
    return {"pp": s.pp_tokens_per_s, "pp_sd": s.pp_sd, "tg": s.tg_tokens_per_s, "tg_sd": s.tg_sd}


def agreement(exe: Path, models: dict[str, Path], threads: int, reps: int, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, m in models.items():
        runs: dict[str, list[dict[str, float]]] = {"llama_bench": [], "medcal": []}
        for i in range(rounds):  # alternate which goes first
            order = ("llama_bench", "medcal") if i % 2 == 0 else ("medcal", "llama_bench")
            for who in order:
                runs[who].append(llama_bench(exe, m, threads, reps) if who == "llama_bench" else ours(m, threads, reps))
        med = {who: {k: statistics.median(r[k] for r in rs) for k in ("pp", "tg")} for who, rs in runs.items()}
        report[name] = {"runs": runs, "median": med,
                        "ratio_pp": med["medcal"]["pp"] / med["llama_bench"]["pp"],
                        "ratio_tg": med["medcal"]["tg"] / med["llama_bench"]["tg"]}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--calibration", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--imatrix-chunks", type=int, default=8)
    ap.add_argument("--eval-chunks", type=int, default=4)
    ap.add_argument("--llama-bench", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--q4", type=Path, default=None, help="the Q4_K_M to time (default: the ladder's rung)")
    ap.add_argument("--skip-wall", action="store_true", help="only the llama-bench agreement")
    ap.add_argument("--wall-rounds", type=int, default=1,
                    help="wall-time rounds; odd rounds run the steps alone first, even ones the ladder first")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ladder-"))
    doc: dict[str, Any] = {"threads": a.threads, "reps": a.reps, "types": TYPES, "machine": "shared"}
    q4: Path | None = a.q4
    try:
        if not a.skip_wall:
            rounds: list[dict[str, Any]] = []
            for i in range(a.wall_rounds):  # alternate which side goes first; each round in fresh folders
                r = work / f"round{i}"
                if i % 2 == 0:
                    alone, whole = steps_alone(a, r), ladder_whole(a, r)
                else:
                    whole, alone = ladder_whole(a, r), steps_alone(a, r)
                rounds.append({"alone": alone, "ladder": whole, "ratio": whole["wall_s"] / alone["sum_s"]})
                print(f"round {i + 1}: ladder {whole['wall_s']:.1f} s vs steps alone {alone['sum_s']:.1f} s: "
                      f"{rounds[-1]['ratio']:.3f}x", flush=True)
            doc["rounds"] = rounds
            doc["wall_ratio"] = sum(x["ladder"]["wall_s"] for x in rounds) / sum(x["alone"]["sum_s"] for x in rounds)
            print(f"ladder against its steps, {len(rounds)} round(s): {doc['wall_ratio']:.3f}x", flush=True)
            q4 = q4 or Path(rounds[-1]["ladder"]["rungs"]["Q4_K_M"])
        if a.llama_bench is not None:
            if q4 is None or not q4.is_file():
                from medcal_gui.quantize.quantize import quantize_model

                q4 = work / "Q4_K_M.gguf"
                quantize_model(a.model, q4, "Q4_K_M", threads=a.threads)
            rep = agreement(a.llama_bench, {"F16": a.model, "Q4_K_M": q4}, a.threads, a.reps, a.rounds)
            doc["speed_agreement"] = rep
            for name, r in rep.items():
                m = r["median"]
                print(f"{name}: pp512 medcal {m['medcal']['pp']:.1f} / llama-bench {m['llama_bench']['pp']:.1f} = "
                      f"{r['ratio_pp']:.3f}; tg128 medcal {m['medcal']['tg']:.1f} / llama-bench "
                      f"{m['llama_bench']['tg']:.1f} = {r['ratio_tg']:.3f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(doc, indent=2)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
