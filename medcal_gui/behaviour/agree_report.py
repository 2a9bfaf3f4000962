"""Side-by-side views of an agreement run: differing word spans marked, missing facts listed (HTML, Markdown).

`diff_spans` is shared with the window's Answers view, which colours the same spans."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator

from medcal_gui.behaviour.agree import AgreeResult, PromptAgreement

_PIECE_RE = re.compile(r"\s+|\w+|[^\w\s]")


def diff_spans(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Each text as (piece, differs) runs: the words of `a` not matched in `b` and vice versa."""
    pa, pb = _PIECE_RE.findall(a), _PIECE_RE.findall(b)
    sm = difflib.SequenceMatcher(a=pa, b=pb, autojunk=False)
    ra: list[tuple[str, bool]] = []
    rb: list[tuple[str, bool]] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        same = tag == "equal"
        if i2 > i1:
            ra.append(("".join(pa[i1:i2]), not same))
        if j2 > j1:
            rb.append(("".join(pb[j1:j2]), not same))
    return ra, rb


def _html_runs(runs: list[tuple[str, bool]], cls: str) -> str:
    return "".join(f'<span class="{cls}">{html.escape(t)}</span>' if d else html.escape(t) for t, d in runs)


def _md_runs(runs: list[tuple[str, bool]]) -> str:
    return "".join(f"**{t.strip()}**" + (" " if t.endswith(" ") else "") if d and t.strip() else t
                   for t, d in runs).replace("\n", " ").replace("|", "\\|")


CSS = ("body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse;width:100%} "
       "td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;white-space:pre-wrap} "
       ".del{background:#fbd3d3} .ins{background:#cdeccd} .ok{color:#1a7f37} .miss{color:#b42318}")


def _prompt_rows(p: PromptAgreement) -> Iterator[str]:
    ra, rb = diff_spans(p.base.text, p.other.text)
    state = "identical" if p.identical else f"parts at token {p.first_diff}"
    missing = ", ".join(p.facts.missing) or "none"
    yield (f"<tr><th colspan=2>{html.escape(p.id)}: {state}; edit similarity {p.edit_similarity:.3f}, "
           f"ROUGE-L {p.rouge_l:.3f}; facts kept {len(p.facts.kept)}/{len(p.facts.base)}, "
           f'<span class="miss">missing: {html.escape(missing)}</span></th></tr>')
    yield f"<tr><td>{_html_runs(ra, 'del')}</td><td>{_html_runs(rb, 'ins')}</td></tr>"


def render_html(res: AgreeResult) -> str:
    parts = [f"<!doctype html><meta charset=utf-8><title>medcal agree</title><style>{CSS}</style>",
             f"<h1>Answers of {html.escape(res.base.name)} and its quants</h1>",
             f"<p>{res.n_prompts} prompts, {res.decoding}, at most {res.n_max} tokens each.</p>"]
    for m in res.models:
        s = m.summary()
        parts.append(f"<h2>{html.escape(m.name)}</h2><p>identical {m.identical.text()}; facts kept "
                     f"{m.facts_kept.text()}; mean edit similarity {s['edit_similarity_mean']:.3f}</p>")
        parts.append(f"<table><tr><th>{html.escape(res.base.name)} (base)</th><th>{html.escape(m.name)}</th></tr>")
        for p in m.prompts:
            parts.extend(_prompt_rows(p))
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def render_markdown(res: AgreeResult) -> str:
    lines = [f"# Answers of {res.base.name} and its quants", "",
             f"{res.n_prompts} prompts, {res.decoding}, at most {res.n_max} tokens each. Differing words in bold.",
             ""]
    for m in res.models:
        lines += [f"## {m.name}", "", f"identical {m.identical.text()}; facts kept {m.facts_kept.text()}", "",
                  f"| id | {res.base.name} (base) | {m.name} | facts missing |", "|---|---|---|---|"]
        for p in m.prompts:
            ra, rb = diff_spans(p.base.text, p.other.text)
            lines.append(f"| {p.id} | {_md_runs(ra)} | {_md_runs(rb)} | {', '.join(p.facts.missing)} |")
        lines.append("")
    return "\n".join(lines)


def summary_table(res: AgreeResult) -> str:
    head = ("model", "identical", "first diff (mean/median)", "edit sim", "ROUGE-L", "facts kept", "tok/s")
    rows = [head]
    for m in res.models:
        s = m.summary()
        fd = ("-" if s["first_diff_mean"] is None
              else f"{s['first_diff_mean']:.1f} / {s['first_diff_median']:g}")
        tps = s["tokens_per_s"]
        rows.append((m.name, f"{100 * m.identical.value:.1f} % ({m.identical.k}/{m.identical.n})", fd,
                     f"{s['edit_similarity_mean']:.3f}", f"{s['rouge_l_mean']:.3f}",
                     f"{m.facts_kept.k}/{m.facts_kept.n}", f"{tps:.1f}" if tps else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
