"""Multiple-choice scoring against a bare forward pass over the tokens it must evaluate.

For each question, medcal decodes one batch: the prompt once (in every option's sequence), each option after
it, and reads log-softmax rows. The baseline decodes, per question, one batch of as many tokens (prompt once
+ every option's tokens but its last), asking only the last row of logits: the forward pass alone; a second
baseline asks the same number of logit rows as scoring needs. All run in this process on the same model
and threads, alternating, best of --repeat. Prints the ratio (target <= 1.2).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # noqa: F401  (the repository on sys.path)

from medcal_gui.behaviour.behave_context import BehaveModel
from medcal_gui.behaviour.mcq import encode_question, load_questions, score_options
from medcal_gui.core.resources import samples_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--questions", type=Path, default=samples_dir() / "questions" / "cardiology_smoke.jsonl")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    qs = load_questions(a.questions)[: a.limit]
    with BehaveModel(a.model, n_ctx=1024, threads=a.threads) as m:
        enc = [encode_question(m, q) for q in qs]
        sizes = [len(p) + sum(len(o) - 1 for o in opts) for p, opts in enc]
        score_options(m, *enc[0])  # warm-up
        best_s = best_b = best_r = float("inf")
        for _ in range(a.repeat):
            t = time.perf_counter()
            for p, opts in enc:
                score_options(m, p, opts)
            best_s = min(best_s, time.perf_counter() - t)
            t = time.perf_counter()
            for (p, _), n in zip(enc, sizes, strict=True):
                m.clear()
                seq = (p * (n // len(p) + 1))[:n]
                m.decode(seq, 0)
            best_b = min(best_b, time.perf_counter() - t)
            t = time.perf_counter()
            for (p, _), n in zip(enc, sizes, strict=True):
                m.clear()
                seq = (p * (n // len(p) + 1))[:n]
                m.decode(seq, 0, logits_from=len(p) - 1)  # the rows scoring needs, not their softmax
            best_r = min(best_r, time.perf_counter() - t)
    n_tok = sum(sizes)
    print(f"{len(qs)} questions, {n_tok} tokens to evaluate (prompt once per question), threads {a.threads}")
    print(f"medcal mcq scoring: {best_s:.3f} s ({n_tok / best_s:.1f} tokens/s)")
    print(f"bare forward pass:  {best_b:.3f} s ({n_tok / best_b:.1f} tokens/s)")
    print(f"bare forward, the same logit rows: {best_r:.3f} s")
    print(f"ratio scoring / bare = {best_s / best_b:.3f}  (target <= 1.2)")
    print(f"ratio scoring / bare with the same rows = {best_s / best_r:.3f}")


if __name__ == "__main__":
    main()
