"""Cost of `evaluate` (one quant against its base, cold cache) over two bare llama.cpp forward passes (base
and quant) over the same chunks with the same logits requested, in one process. The issue's bound: 1.3x.

    python bench/bench_eval.py [--base BASE.gguf] [--model QUANT.gguf] [--text FILE] [--ctx 512]
                               [--chunks 4] [--repeat 2]

Without --base the demo model (Gemma 3 270M F16, prepared into the cache) is used; without --model a Q8_0
of the base is made in a temporary folder; without --text the bundled sample narratives. The runs
alternate (bare, eval, bare, eval, ...) so that load on the machine hits both alike; the best of each is
compared. The base file's sha256 is computed once before timing (it is remembered afterwards anyway).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, chunk_args  # noqa: E402


def main() -> int:
    ap = chunk_args(__doc__, "base", "model")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="medcal-bench-eval-"))
    os.environ["MEDCAL_CACHE"] = str(tmp / "cache")  # a private, cold evaluation cache
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> int:

    from medcal_gui.core.file_hashes import file_sha256
    from medcal_gui.core.jobs import CancelToken
    from medcal_gui.core.resources import samples_dir
    from medcal_gui.evaluate.evaluate import EvalModel, evaluate
    from medcal_gui.gguf_files.demo_model import prepare_demo_model
    from medcal_gui.llama import ggml_ctypes as gc

    threads = args.threads or os.cpu_count() or 1
    base = args.base or prepare_demo_model(Path(os.environ.get("MEDCAL_TEST_CACHE", REPO / ".venv" /
                                                               "medcal-test-cache")) / "models")
    quant = args.model
    if quant is None:
        quant = tmp / "bench-q8_0.gguf"
        qa = gc.quantize_params(ftype=7, nthread=threads, allow_requantize=False, pure=False, dry_run=False,
                                output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
        if gc.model_quantize(base, quant, qa) != 0:
            print("quantizing the benchmark's Q8_0 failed", file=sys.stderr)
            return 1
    text_path = args.text or sorted(samples_dir().glob("*.txt"))[0]
    text = text_path.read_text(encoding="utf-8")
    file_sha256(base)
    cancel = CancelToken()

    def bare() -> float:
        t = 0.0
        for path in (base, quant):
            with EvalModel(path, args.ctx, threads, cancel) as em:
                tokens = em.tokenize(text, True)
                t0 = time.perf_counter()
                for i in range(args.chunks):
                    em.decode(tokens[i * args.ctx: (i + 1) * args.ctx], cancel)
                t += time.perf_counter() - t0
        return t

    def full() -> tuple[float, float]:
        t0 = time.perf_counter()
        r = evaluate(base, [quant], text, n_ctx=args.ctx, threads=threads, n_chunks=args.chunks, use_cache=False)
        return time.perf_counter() - t0, r.base_seconds + r.models[0].seconds

    bares, fulls, inner = [], [], []
    for _ in range(args.repeat):
        bares.append(bare())
        f, i = full()
        fulls.append(f)
        inner.append(i)
    b, f, i = min(bares), min(fulls), min(inner)
    n_tok = 2 * args.chunks * args.ctx
    print(f"base {base.name}, quant {quant.name}, {args.chunks} chunks of {args.ctx}, {threads} threads")
    print(f"bare forward passes (base + quant): {b:.2f} s ({n_tok / b:.0f} tokens/s)   runs: "
          + ", ".join(f"{x:.2f}" for x in bares))
    print(f"evaluate, cold cache (wall, incl. loading both models): {f:.2f} s   runs: "
          + ", ".join(f"{x:.2f}" for x in fulls))
    print(f"evaluate, the two passes with statistics and cache writes: {i:.2f} s")
    print(f"ratio (passes with statistics / bare passes): {i / b:.3f}")
    print(f"ratio (whole evaluate call / bare passes):    {f / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
