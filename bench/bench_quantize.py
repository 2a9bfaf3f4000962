"""Quantize time per type (child process included), with an importance matrix computed first.

    python bench/bench_quantize.py [--model MODEL.gguf] [--types Q8_0 Q4_K_M IQ3_XXS] [--allow-requantize]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medcal_gui.engine.imatrix import compute_imatrix  # noqa: E402
from medcal_gui.engine.quantize import quantize_model  # noqa: E402
from medcal_gui.engine.tiny_model import write_tiny_gemma3  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--imatrix", type=Path)
    ap.add_argument("--types", nargs="+", default=["Q8_0", "Q4_K_M", "Q3_K_S", "IQ3_XXS"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--allow-requantize", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or write_tiny_gemma3(Path(tmp) / "tiny.gguf")
        imatrix = args.imatrix
        if imatrix is None:
            files = sorted((REPO / "resources" / "samples").glob("*.txt"))
            t0 = time.monotonic()
            ctx = 512 if args.model else 128
            res = compute_imatrix(model, files, n_ctx=ctx, n_chunks=4, out=Path(tmp) / "imatrix.gguf")
            imatrix = res.out
            print(f"imatrix: {res.entries} entries, {res.chunks} chunks in {time.monotonic() - t0:.1f} s")
        print(f"model {model.name}: {model.stat().st_size / 1e6:.1f} MB")
        for qt in args.types:
            t0 = time.monotonic()
            r = quantize_model(model, Path(tmp) / f"out-{qt}.gguf", qt, imatrix=imatrix, threads=args.threads,
                               allow_requantize=args.allow_requantize)
            print(f"{qt:8s} {time.monotonic() - t0:7.2f} s  {r.output_bytes / 1e6:8.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
