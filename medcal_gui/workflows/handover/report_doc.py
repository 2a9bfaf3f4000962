"""The printable quantization report as HTML (the subset QTextDocument renders) and its figures as SVG.

Qt-free: `ui/report_pdf.py` lays it out and writes the PDF. What went in (base and its hash, calibration set
summary and hash, settings), what came out (each file, its hash), how faithful it is (eval figures, the KLD
histogram from `medcal eval --plot`, the ladder's chart, behaviour checks with flips and p-values), versions,
and a line for the reviewer's signature.

Every value is HTML-escaped (Qt's rich text is HTML: a model name `<img src=…>` would be markup), numbers are
printed only when they are numbers, and a figure given as SVG is refused when it could not lay out on a page
(a 1 × 100,000 px plot gave a blank PDF of "-10638 page(s)") or when it refers to another file.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError
from medcal_gui.core.svg_chart import ranking_svg
from medcal_gui.core.text_files import read_utf8
from medcal_gui.core.units import format_bytes
from medcal_gui.workflows.handover.escaping import one_line
from medcal_gui.workflows.handover.model_card import CAUTION, pct_text, speed_text
from medcal_gui.workflows.handover.publish_facts import PublishFacts

STYLE = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 8pt; }
h1 { font-size: 14pt; margin-bottom: 2px; }
h2 { font-size: 10pt; margin-top: 8px; margin-bottom: 3px; color: #1f3b5c; }
td, th { padding: 2px 4px; }
th { background-color: #e8edf3; text-align: left; }
.hash { font-family: 'DejaVu Sans Mono', monospace; font-size: 7pt; }
.small { font-size: 8pt; color: #333333; }
"""


SVG_LIMIT = 32 * 1024 * 1024  # bytes: `medcal eval --plot` writes tens of kB
MAX_ASPECT = 8.0  # a figure at most this many times taller than wide (or wider than tall)
MAX_BARS = 30  # bars in a chart drawn from a JSON file (a ladder has a dozen rungs)
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


@dataclass
class ReportDoc:
    html: str
    images: dict[str, str] = field(default_factory=dict)  # resource name -> SVG text
    figures: dict[str, str] = field(default_factory=dict)  # the headline figures, as printed (tests, GUI)


def _e(v: Any) -> str:
    return escape("–" if v is None or v == "" else str(v))


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "<tr>" + "".join(f"<th>{escape(x)}</th>" for x in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table border="1" cellspacing="0" cellpadding="2" width="100%">{h}{body}</table>'


def _hash(h: Any) -> str:
    return f'<span class="hash">{_e(h)}</span>'


def _f(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _inputs(facts: PublishFacts) -> list[str]:
    b, c, im = facts.base, facts.calibration or {}, facts.imatrix or {}
    lic = b.get("license_name") or b.get("license") or "not named in the metadata"
    rows = [["Base model", f"{_e(b.get('name'))} ({_e(b.get('file'))}), {int(b.get('parameters') or 0):,} "
             f"parameters, {_e(b.get('architecture'))}; licence {_e(lic)}"],
            ["Base sha256", _hash(b.get("sha256") or "not recorded")]]
    if c.get("records") is not None:
        pops = ", ".join(f"{_e(n)} {_e(k)}" for k, n in sorted((c.get("populations") or {}).items()))
        rows.append(["Calibration set", f"{_e(c['records'])} records ({pops}); variant {_e(c.get('variant'))}, "
                     f"layout {_e(c.get('layout'))}; about {_e(c.get('token_estimate'))} tokens"])
    if c.get("sha256"):
        rows.append(["Calibration sha256", _hash(c["sha256"]) + (f" ({_e(c.get('file'))})" if c.get("file") else "")])
    if im:
        rows.append(["Importance matrix", f"{_e(im.get('file'))}: {_e(im.get('entries'))} entries, "
                     f"{_e(im.get('chunk_count'))} chunks of {_e(im.get('chunk_size'))} tokens"])
        rows.append(["Imatrix sha256", _hash(im.get("sha256"))])
    else:
        rows.append(["Importance matrix", "none recorded"])
    settings = []
    for q in facts.quants:
        o = (q.manifest or {}).get("options") or {}
        extra = ", ".join(f"{k} {v}" for k, v in o.items() if v not in (None, False, 0))
        settings.append(f"{_e(q.qtype)}" + (f" ({_e(extra)})" if extra else ""))
    rows.append(["Settings", "; ".join(settings)])
    return ["<h2>1. What went in</h2>", _table([], [[f"<b>{escape(k)}</b>", v] for k, v in rows])]


def _outputs(facts: PublishFacts) -> list[str]:
    rows = [[_e(q.name), _e(q.qtype), format_bytes(q.bytes), _hash(q.sha256)] for q in facts.quants]
    return ["<h2>2. What came out</h2>", _table(["file", "type", "size", "sha256"], rows),
            f'<p class="small">Source files: {", ".join(_e(q.source.name) for q in facts.quants)}.</p>']


def _fidelity(facts: PublishFacts, doc: ReportDoc, hist_svg: str | None) -> list[str]:
    out = ["<h2>3. How faithful it is</h2>"]
    rows = []
    for q in facts.quants:
        f = q.figures
        rows.append([_e(q.qtype), _f(f.get("bpw"), ".2f"), _f(f.get("kld_mean"), ".5f"), _f(f.get("kld_p99"), ".4f"),
                     _f(f.get("same_top_pct"), ".1f"), _f(f.get("ppl_ratio"), ".4f"), escape(speed_text(f))])
        if f.get("kld_mean") is not None:
            doc.figures[f"{q.qtype}.kld_mean"] = _f(f.get("kld_mean"), ".5f")
    out.append(_table(["type", "bpw", "KLD mean", "KLD p99", "same top %", "PPL ratio", "speed"], rows))
    ev = facts.eval
    if ev:
        out.append(f'<p class="small">Measured on {_e(Path(str(ev.get("text") or "?")).name)}: '
                   f'{_e(ev.get("chunks"))} chunks of {_e(ev.get("n_ctx"))} tokens, {_e(ev.get("tokens_scored"))} '
                   "tokens scored, llama-perplexity's method (KL divergence per token against the base).</p>")
    if hist_svg:
        doc.images["kld_histogram.png"] = hist_svg
        out.append('<p><img src="kld_histogram.png" width="430"></p>')
    elif ev and ev.get("models"):  # no histogram given: the eval's means and 99th percentiles as bars
        ms = _charted(ev["models"])
        if ms:
            doc.images["kld_ranking.png"] = ranking_svg([one_line(m.get("name"), 40) for m in ms],
                                                        [float(m["kld_mean"]) for m in ms], [_p99(m) for m in ms],
                                                        title="KL divergence against the base")
            out.append('<p><img src="kld_ranking.png" width="430"></p>')
    lad = facts.ladder
    if lad and lad.get("rungs"):
        rungs = _charted(lad["rungs"])
        if rungs:
            doc.images["ladder.png"] = ranking_svg(
                [f"{one_line(r['type'], 30)} ({_f(r.get('bpw'), '.2f')} bpw)" for r in rungs],
                [float(r["kld_mean"]) for r in rungs], [_p99(r) for r in rungs],
                title="Quant ladder: KL divergence per type")
            out.append('<p><img src="ladder.png" width="430"></p>')
        if len(rungs) < len(lad["rungs"]):
            out.append(f'<p class="small">The chart shows {len(rungs)} of the ladder\'s {len(lad["rungs"])} '
                       "rungs (those with a finite KLD, the closest first).</p>")
        rec = lad.get("recommendation") or {}
        if rec:
            out.append(f"<p>Ladder recommendation: <b>{_e(rec.get('type'))}</b> {_e(rec.get('reason'))}</p>")
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _charted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries a bar chart can draw (a finite mean KLD), the closest MAX_BARS of them."""
    ok = [m for m in items if _finite(m.get("kld_mean"))]
    return sorted(ok, key=lambda m: float(m["kld_mean"]))[:MAX_BARS]


def _p99(m: dict[str, Any]) -> float:
    return float(m["kld_p99"]) if _finite(m.get("kld_p99")) else float(m["kld_mean"])


def _svg_length(v: str | None) -> float | None:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)?\s*", v or "")
    return float(m.group(1)) * _UNITS[m.group(2) or ""] if m else None


def svg_size(svg: str) -> tuple[float, float] | None:
    """(width, height) of an SVG's root element as Qt sizes it: width/height, else the viewBox's."""
    m = re.search(r"<svg\b[^>]*>", svg[:1 << 16])
    if not m:
        return None
    attrs = dict(re.findall(r"([\w:-]+)\s*=\s*[\"']([^\"']*)[\"']", m.group(0)))
    w, h = _svg_length(attrs.get("width")), _svg_length(attrs.get("height"))
    box = [_svg_length(x) for x in re.split(r"[\s,]+", attrs.get("viewBox", "").strip())]
    if len(box) == 4:
        w = w if w is not None else box[2]
        h = h if h is not None else box[3]
    return (w, h) if w is not None and h is not None else None


def check_svg(svg: str, path: Path) -> None:
    """Refuse a figure the report could not lay out on a page, or one that would pull in another file."""
    if "<svg" not in svg:
        raise InputError(f"{path} is not an SVG figure (write one with `medcal eval --plot FILE.svg`).")
    if re.search(r"<!ENTITY|<!DOCTYPE[^>]*\[", svg):
        raise InputError(f"{path} declares XML entities, which a figure of `medcal eval --plot` never does: "
                         "pass the SVG medcal wrote.")
    ref = re.search(r"""(?:xlink:)?href\s*=\s*["']\s*(?!#|data:)([^"']{0,80})""", svg)
    if ref:
        raise InputError(f"{path} refers to another file or address ({one_line(ref.group(1), 80)!r}); the "
                         "report embeds only self-contained figures. Pass the SVG `medcal eval --plot` wrote.")
    size = svg_size(svg)
    if size is not None:
        w, h = size
        if not (w > 0 and h > 0) or not (1 / MAX_ASPECT <= h / w <= MAX_ASPECT):
            raise InputError(f"{path} is {w:g} × {h:g} (width × height); a figure of the report must be wider and "
                             f"taller than 0 and at most {MAX_ASPECT:g} times taller than wide or wider than tall. "
                             "Pass the histogram `medcal eval --plot FILE.svg` wrote.")


def _behaviour(facts: PublishFacts) -> list[str]:
    out: list[str] = []
    agr, mcq = facts.agree, facts.mcq
    if agr and agr.get("models"):
        rows = [[_e(m.get("name")), pct_text(m.get("identical")), pct_text(m.get("facts_kept")),
                 _f(m.get("rouge_l_mean"), ".3f")] for m in agr["models"]]
        out += [f'<p>Answers against the base ({_e(agr.get("n_prompts"))} prompts, {_e(agr.get("decoding"))}):</p>',
                _table(["model", "identical", "facts kept", "ROUGE-L"], rows)]
    if mcq and mcq.get("models"):
        rows = [[_e(m.get("name")), pct_text(m.get("accuracy"))] for m in mcq["models"]]
        out += [f'<p>Multiple-choice accuracy ({_e(mcq.get("n_questions"))} questions):</p>',
                _table(["model", "accuracy"], rows)]
        flips = [[_e(f.get("a")), _e(f.get("b")), _e(f.get("n_lost")), _e(f.get("n_gained")),
                  _f(f.get("mcnemar_p"), ".3g")] for f in mcq.get("flips", [])]
        if flips:
            out.append(_table(["from", "to", "lost", "gained", "McNemar p"], flips))
    if not out:
        return ["<h2>4. Behaviour checks</h2>", "<p>None were run for these files.</p>"]
    return ["<h2>4. Behaviour checks</h2>"] + out


def build_report(facts: PublishFacts, *, hist_svg: Path | None = None, reviewer: str = "") -> ReportDoc:
    """The report for `facts`; `hist_svg` is the KLD histogram `medcal eval --plot` wrote."""
    svg = None
    if hist_svg is not None:
        svg = read_utf8(Path(hist_svg), "histogram", limit=SVG_LIMIT,
                        not_utf8_hint=" Pass the SVG `medcal eval --plot` wrote.")
        check_svg(svg, Path(hist_svg))
    doc = ReportDoc("")
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<html><head><style>{STYLE}</style></head><body>",
             f"<h1>Quantization report: {_e(facts.base.get('name') or facts.model_name)}</h1>",
             f'<p class="small">Written {now} by medcal {_e(facts.versions.get("medcal"))}. '
             f"{len(facts.quants)} quantized file(s) of one base.</p>"]
    parts += _inputs(facts) + _outputs(facts) + _fidelity(facts, doc, svg) + _behaviour(facts)
    parts += ["<h2>5. Versions</h2>", "<p>" + "; ".join(f"{_e(k)} {_e(v)}" for k, v in facts.versions.items())
              + "</p>"]
    if facts.warnings:
        parts += ["<p class='small'>Notes: " + " ".join(_e(w) for w in facts.warnings) + "</p>"]
    parts += [f"<p><b>Caution.</b> {escape(CAUTION)}</p>", "<h2>Review</h2>",
              _table(["reviewer", "role", "date", "signature"],
                     [[(_e(reviewer) if reviewer else "&nbsp;") + "<br>&nbsp;", "&nbsp;", "&nbsp;", "&nbsp;"]]),
              "</body></html>"]
    doc.html = "\n".join(parts)
    doc.figures["base_sha256"] = str(facts.base.get("sha256"))
    return doc
