"""Format and validate a generated corpus (default 100,000 records, about 60 MB) and print records/s and
peak memory. The issue's bound: under 10 s and under 300 MB on the 2-core machine.

    python bench/bench_dataset.py [--records N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medcal_gui.dataset.export import export_dataset  # noqa: E402
from medcal_gui.dataset.validation.validate import validate_file  # noqa: E402
from medcal_gui.dataset.variants import get_variant  # noqa: E402

POPS = ["Adolescent patient, {a} years old, {s}", "Adult patient, {a} years old, {s}",
        "Neonate patient, {d} days old, {s}"]
PHRASES = [
    "continuous telemetry showed normal sinus rhythm with a mean HR of {hr} ± {sd} bpm",
    "two runs of supraventricular tachycardia up to {hr2} bpm terminated spontaneously",
    "BP {sys}/{dia} mmHg, SpO2 {spo2}% on room air, temperature {t} °C",
    "QTc measured {qt} ms on serial strips with no pauses longer than 2 seconds",
    "heart-rate variability was preserved during sleep, 55–{hr} bpm",
    "recommend outpatient follow-up and a repeat ambulatory ECG if palpitations recur",
    "isolated premature ventricular complexes, burden under 1%, no couplets",
    "dopamine infusion at {mu} µg/kg/min was weaned over the monitoring period",
]


def make_corpus(path: Path, n: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            head = rng.choice(POPS).format(a=rng.randint(10, 80), d=rng.randint(1, 27),
                                           s=rng.choice(["Female", "Male"]))
            body = "; ".join(rng.choice(PHRASES).format(
                hr=rng.randint(60, 140), sd=rng.randint(3, 12), hr2=rng.randint(150, 230),
                sys=rng.randint(60, 140), dia=rng.randint(35, 90), spo2=rng.randint(90, 100),
                t=f"{rng.uniform(36, 38.5):.1f}", qt=rng.randint(380, 470), mu=rng.randint(2, 10))
                for _ in range(rng.randint(5, 9)))
            fh.write(f"Below is a cardiology topic:\n\n{head}, case {i}: {body}.\n\n")
    return path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        work = args.keep or Path(td)
        work.mkdir(parents=True, exist_ok=True)
        src = work / "corpus.txt"
        size = make_corpus(src, args.records)
        print(f"corpus: {args.records} records, {size / 1e6:.1f} MB")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        res = export_dataset([src], out=work / "formatted.txt", variant=get_variant("quantization_calibration"))
        t1 = time.perf_counter()
        rep = validate_file(work / "formatted.txt", expect_records=args.records)
        t2 = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert res.records == args.records and rep.records == args.records and not rep.errors, rep.errors[:3]
        print(f"format (+ built-in validation): {t1 - t0:.2f} s, {args.records / (t1 - t0):,.0f} records/s")
        print(f"validate: {t2 - t1:.2f} s, {args.records / (t2 - t1):,.0f} records/s")
        print(f"medcal format validates as it writes: {t1 - t0:.2f} s for format + validation (bound 10 s); "
              f"a separate validate pass adds {t2 - t1:.2f} s")
        print(f"peak RSS {rss:.0f} MB (at start {rss0:.0f} MB; bound 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
