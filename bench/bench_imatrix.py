"""Overhead of importance-matrix collection over a bare forward pass, same chunks, same process.

    python bench/bench_imatrix.py [--model MODEL.gguf] [--text FILE] [--ctx 512] [--chunks 4] [--repeat 2]

Without --model a tiny random Gemma-3 is used; without --text the bundled sample narratives.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, chunk_args  # noqa: E402

from medcal_gui.calibrate.imatrix import compute_imatrix  # noqa: E402
from medcal_gui.llama.tiny_model import write_tiny_gemma3  # noqa: E402


def main() -> int:
    ap = chunk_args(__doc__, "model")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or write_tiny_gemma3(Path(tmp) / "tiny.gguf")
        files = [args.text] if args.text else sorted((REPO / "resources" / "samples").glob("*.txt"))
        text = "".join(f.read_text(encoding="utf-8") for f in files)
        while True:  # repeat the text until it fills the chunks asked for (the tiny vocabulary is coarse)
            bare = compute_imatrix(model, [text], n_ctx=args.ctx, n_chunks=args.chunks, threads=args.threads,
                                   collect=False)
            if bare.chunks >= args.chunks:
                break
            text += text
        rows = []
        for _ in range(args.repeat):
            bare = compute_imatrix(model, [text], n_ctx=args.ctx, n_chunks=args.chunks, threads=args.threads,
                                   collect=False)
            coll = compute_imatrix(model, [text], n_ctx=args.ctx, n_chunks=args.chunks, threads=args.threads)
            rows.append((bare.tokens_per_s, coll.tokens_per_s))
        b = statistics.median(r[0] for r in rows)
        c = statistics.median(r[1] for r in rows)
        print(f"model {model.name}: {args.chunks} chunks x {args.ctx} tokens, {coll.entries} imatrix entries")
        print(f"bare forward pass : {b:10.1f} tokens/s")
        print(f"with imatrix      : {c:10.1f} tokens/s")
        print(f"overhead ratio    : {b / c:10.3f}  (time with / time without)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
