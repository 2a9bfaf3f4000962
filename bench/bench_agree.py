"""Greedy agreement generation against a bare llama_decode loop of the same length.

medcal's loop: argmax over the last row of logits, end-of-generation check, decode that token. The baseline
decodes one fixed token per step, the same number of steps after the same prompt, reading no logits. Same
model, threads and process, alternating, best of --repeat. Prints the tokens/s ratio (target >= 0.9).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # noqa: F401  (the repository on sys.path)

from medcal_gui.behaviour.behave_context import BehaveModel

PROMPT = ("Patient, 67 years old, male. ECG: atrial fibrillation at 132 bpm, no ST depression. "
          "BP 96/58 mmHg. Summarise the findings.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    with BehaveModel(a.model, n_ctx=512, threads=a.threads) as m:
        prompt = m.prompt_tokens([{"role": "user", "content": PROMPT}])
        steps = a.n
        best_g = best_b = 0.0
        n_gen = 0
        for _ in range(a.repeat):
            toks, _finish = m.greedy(prompt, a.n)
            n_gen = len(toks)
            # greedy decodes n-1 tokens after the prompt for n generated; time per decoded step
            best_g = max(best_g, max(n_gen - 1, 1) / m.last_gen_s)
            steps = max(n_gen - 1, 1)
            m.clear()
            m.decode(prompt, 0)
            t = time.perf_counter()
            for i in range(steps):
                m.decode([prompt[-1]], len(prompt) + i)
            best_b = max(best_b, steps / (time.perf_counter() - t))
    print(f"prompt {len(prompt)} tokens, {n_gen} generated ({steps} decode steps), threads {a.threads}")
    print(f"medcal greedy loop: {best_g:.1f} tokens/s")
    print(f"bare decode loop:   {best_b:.1f} tokens/s")
    print(f"ratio greedy / bare = {best_g / best_b:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
