"""`medcal chat`: talk to a model (one-shot with --prompt, a REPL otherwise), optionally A/B with its base."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medcal_gui.cli import flags
from medcal_gui.cli.output import print_json
from medcal_gui.core.errors import InputError

NAME = "chat"
HELP = "chat with a model, or compare a quant's answers with its base's (--compare)"
DESCRIPTION = (
    "Chat with a GGUF using its own chat template (Gemma's when it has none; a --system prompt is folded into "
    "the first user turn). With --prompt it answers once and exits; otherwise it reads messages from the "
    "terminal (/reset starts over, /quit or Ctrl-D ends; Ctrl-C stops a reply). --compare BASE sends every "
    "message to BASE too, for side-by-side answers and speeds. --preset NAME sends a preset prompt "
    "(--list-presets shows them)."
)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", type=Path, required=False, metavar="MODEL", help="GGUF model to chat with")
    p.add_argument("--compare", type=Path, default=None, metavar="BASE", help="also ask this model (A/B)")
    p.add_argument("--prompt", "-p", default=None, metavar="TEXT", help="one message, answer, exit")
    p.add_argument("--preset", default=None, metavar="NAME", help="send a preset prompt (one-shot)")
    p.add_argument("--list-presets", action="store_true", help="list the preset prompts and exit")
    p.add_argument("--system", default=None, metavar="TEXT", help="system prompt")
    p.add_argument("-n", "--max-tokens", type=int, default=256, metavar="N", help="tokens per reply (256)")
    p.add_argument("--temp", type=float, default=0.7, help="temperature; 0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    flags.add_ctx(p, 4096, "context size in tokens (default 4096)")
    flags.add_threads(p)
    p.add_argument("--template", choices=["auto", "gguf", "gemma"], default="auto",
                   help="chat template: the GGUF's own (auto when present), or Gemma's")
    p.add_argument("--json", action="store_true", help="one-shot: print the reply(ies) and stats as JSON")


def _stats_line(name: str, st: object) -> str:
    from medcal_gui.chat.chat import ChatStats

    assert isinstance(st, ChatStats)
    speed = f"{st.tokens_per_s:.1f} tokens/s" if st.tokens_per_s else "-"
    ttft = f"{st.ttft_s:.2f} s to first token" if st.ttft_s is not None else "no token"
    note = f"; {st.message}" if st.message else ""
    return f"[{name}: {st.completion_tokens} tokens, {speed}, {ttft}, {st.finish_reason}{note}]"


def run(args: argparse.Namespace) -> int:
    from medcal_gui.chat.chat import ChatSession, SamplingParams, StopFlag
    from medcal_gui.chat.chat_presets import get_preset, load_presets

    if args.list_presets:
        for pr in load_presets():
            print(f"{pr.name:34s} {pr.title}")
        return 0
    if args.model is None:
        raise InputError("Give the model to chat with: --model MODEL.")
    from medcal_gui.core.errors import ModelError
    from medcal_gui.core.fsutil import check_input_file

    for m in (args.model, args.compare):  # a folder x.gguf was "does not exist"; a FIFO hung
        if m is not None:
            check_input_file(m, "model file", error=ModelError)
    prompt = args.prompt
    system = args.system
    if args.preset:
        if prompt:
            raise InputError("Use either --prompt or --preset, not both.")
        pr = get_preset(args.preset)
        prompt, system = pr.prompt, system or pr.system or None
    params = SamplingParams(temperature=args.temp, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                            repeat_penalty=args.repeat_penalty, max_tokens=args.max_tokens, seed=args.seed)
    sessions = [ChatSession(args.model, n_ctx=args.ctx, threads=args.threads, system=system,
                            template=args.template)]
    if args.compare is not None:
        sessions.append(ChatSession(args.compare, n_ctx=args.ctx, threads=args.threads, system=system,
                                    template=args.template))
    if params.seed is None and len(sessions) > 1:
        import os

        params.seed = int.from_bytes(os.urandom(4), "little")  # A and B sample with the same seed
    stop = StopFlag()
    interrupted: list[bool] = []

    def answer(text: str) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for s in sessions:
            stop.clear()
            if len(sessions) > 1 and not args.json:
                print(f"--- {s.name} ---")
            try:
                pieces = []
                for piece in s.stream(text, params, stop):
                    pieces.append(piece)
                    if not args.json:
                        sys.stdout.write(piece)
                        sys.stdout.flush()
            except KeyboardInterrupt:
                stop.set()
                interrupted.append(True)
            if not args.json:
                print()
                print(_stats_line(s.name, s.last_stats), file=sys.stderr)
            out.append({"model": s.name, "template": s.template_source, "text": "".join(pieces),
                        "stats": s.last_stats.to_json()})
            if interrupted:
                break
        return out

    try:
        if prompt is not None:
            res = answer(prompt)
            if args.json:
                print_json({"prompt": prompt, "replies": res})
            if interrupted:  # Ctrl-C stopped the answer: not a success
                print("medcal chat: cancelled", file=sys.stderr)
                return 130
            return 0
        print(f"chatting with {', '.join(s.name for s in sessions)} ({sessions[0].template_source} template); "
              "/reset starts over, /quit ends", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except EOFError:
                print()
                return 0
            if line.strip() in ("/quit", "/exit"):
                return 0
            if line.strip() == "/reset":
                for s in sessions:
                    s.reset()
                continue
            if line.strip():
                answer(line)
    finally:
        for s in sessions:
            s.close()
