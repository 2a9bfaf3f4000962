"""README.md for a publish folder: a model card with YAML front matter that hubs read (base_model,
base_model_relation, license, tags, pipeline_tag), then plain sections a person reads.

Never holds calibration text: only the dataset log's counts and the hashes. Every value that came from
outside (the base's metadata, a manifest, a JSON file of figures, a file name) is escaped for where it lands:
YAML double-quoted scalars in the front matter, Markdown text with HTML's `<>&` as entities, code spans whose
fence outruns any backtick in the value, shell words in the rebuild commands (`escaping.py`).
"""

from __future__ import annotations

from typing import Any

from medcal_gui.core.units import format_bytes
from medcal_gui.workflows.handover.escaping import md_cell, md_code, md_text, yaml_quote
from medcal_gui.workflows.handover.publish_facts import PublishFacts, QuantFile

TAGS = ("gguf", "medical", "imatrix", "quantized", "llama.cpp", "medcal")
CAUTION = ("A quantized model is a different model. Its figures above were measured on the texts named here, "
           "not in clinical use: validate this file on your own cases, under your own governance, before "
           "anyone relies on what it writes. It is not a medical device.")


def _yaml_str(v: object) -> str:
    return yaml_quote(v)


def front_matter(facts: PublishFacts) -> str:
    b = facts.base
    base_model = b.get("base_model") or b.get("repo_url") or b.get("name") or facts.model_name
    lines = ["---", f"base_model: {_yaml_str(base_model)}", "base_model_relation: quantized",
             f"license: {_yaml_str(b.get('license') or 'other')}"]
    if b.get("license_name"):
        lines.append(f"license_name: {_yaml_str(b['license_name'])}")
    if b.get("license_link"):
        lines.append(f"license_link: {_yaml_str(b['license_link'])}")
    lines += ["pipeline_tag: text-generation", "tags:"] + [f"- {t}" for t in TAGS]
    lines.append("---")
    return "\n".join(lines)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def pct_text(p: Any) -> str:
    """`70 % (7/10)`; only numbers reach the text (the card and the report both print it unescaped)."""
    if isinstance(p, dict) and _is_num(p.get("n")) and p["n"] and _is_num(p.get("value")) and _is_num(p.get("k")):
        return f"{100 * float(p['value']):.0f} % ({int(p['k'])}/{int(p['n'])})"
    return "–"


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def speed_text(f: dict[str, Any]) -> str:
    if _is_num(f.get("tg_tokens_per_s")) and f["tg_tokens_per_s"]:
        s = f"{f['tg_tokens_per_s']:.1f} tok/s gen"
        return s + (f" ({f['speedup_tg']:.2f}×)" if _is_num(f.get("speedup_tg")) and f["speedup_tg"] else "")
    if _is_num(f.get("eval_tokens_per_s")) and f["eval_tokens_per_s"]:
        return f"{f['eval_tokens_per_s']:.0f} tok/s eval"
    return "–"


def file_row(q: QuantFile) -> list[str]:
    f = q.figures
    return [md_cell(q.name), md_cell(q.qtype), format_bytes(q.bytes), _num(f.get("bpw"), ".2f"),
            _num(f.get("kld_mean"), ".5f"),
            _num(f.get("same_top_pct"), ".1f") + (" %" if f.get("same_top_pct") is not None else ""),
            _num(f.get("ppl_ratio"), ".4f"), speed_text(f), pct_text(f.get("agreement")), pct_text(f.get("accuracy"))]


FILE_HEAD = ["file", "type", "size", "bpw", "KLD mean", "same top", "PPL ratio", "speed", "agreement", "accuracy"]


def _count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else md_text(v, 40)


def calibration_lines(facts: PublishFacts, include_calibration: bool, imatrix_name: str | None = None
                      ) -> list[str]:
    c, im = facts.calibration or {}, facts.imatrix or {}
    out: list[str] = []
    if not im and not c:
        return ["No importance matrix was recorded for these files."]
    if im:
        shown = imatrix_name or im.get("file")
        out.append(f"- Importance matrix: {md_code(shown)}, sha256 {md_code(im.get('sha256') or 'not recorded')}"
                   + (f", {_count(im['entries'])} entries" if im.get("entries") else "")
                   + ("" if imatrix_name else " (not part of this folder)"))
        if im.get("chunk_count"):
            out.append(f"- Computed over {_count(im['chunk_count'])} chunks of {_count(im.get('chunk_size'))} "
                       f"tokens ({_count(im.get('tokens', 0))} tokens)"
                       + (f" of {md_code(', '.join(im['datasets']))}" if im.get("datasets") else ""))
    if c.get("records") is not None:
        pops = ", ".join(f"{md_text(n, 20)} {md_text(k, 60)}" for k, n in sorted((c.get("populations") or {}).items()))
        out.append(f"- Calibration set: {_count(c['records'])} records ({pops or 'no populations recorded'}), "
                   f"variant {md_code(c.get('variant'))}, layout {md_code(c.get('layout'))}, about "
                   f"{md_text(c.get('token_estimate'), 40)} tokens (estimate)")
    if c.get("sha256"):
        out.append(f"- Calibration text sha256 {md_code(c['sha256'])}" + (f" ({_count(c['bytes'])} bytes)"
                                                                        if c.get("bytes") else ""))
    out.append(f"- The calibration text is included as {md_code(c.get('published_as') or c.get('file'))}."
               if include_calibration else
               "- The calibration text itself is not part of this folder (it may hold clinical text); "
               "its hash identifies it.")
    return out


def render_card(facts: PublishFacts, *, imatrix_name: str | None, mmproj_name: str | None,
                include_calibration: bool = False) -> str:
    b = facts.base
    title = b.get("name") or facts.model_name
    lic = b.get("license_name") or b.get("license")
    v = facts.versions
    out = [front_matter(facts), "", f"# {md_text(facts.model_name)} GGUF (quantized)", "",
           f"Quantized GGUF files of **{md_text(title)}**, made with medcal {md_text(v.get('medcal'))} "
           f"(llama.cpp through llama-cpp-python {md_text(v.get('llama_cpp_python', 'unknown'))}).", "",
           "## The base model", ""]
    out.append(f"- Base file: {md_code(b.get('file') or 'not given')}, sha256 "
               f"{md_code(b.get('sha256') or 'not recorded')}")
    if b.get("architecture"):
        out.append(f"- Architecture: {md_text(b['architecture'])}, {int(b.get('parameters') or 0):,} parameters")
    out.append(f"- Licence: {md_text(lic)} (the base's terms apply to these files)" if lic else
               "- Licence: the base's metadata names none; the base's own terms apply to these files.")
    if b.get("license_link"):
        out.append(f"- Licence terms: {md_text(b['license_link'])}")
    if b.get("organization") or b.get("repo_url"):
        out.append(f"- From: {md_text(b.get('organization') or '')} {md_text(b.get('repo_url') or '')}".rstrip())
    out += ["", "Intended use (from the base's metadata):", "",
            f"> {md_text(b['description'], 4000)}" if b.get("description") else
            "> The base's metadata gives no description.",
            "", "## Files", "", "| " + " | ".join(FILE_HEAD) + " |", "|" + "---|" * len(FILE_HEAD)]
    out += ["| " + " | ".join(file_row(q)) + " |" for q in facts.quants]
    if mmproj_name:
        out.append(f"\nThe vision projector {md_code(mmproj_name)} goes with every file (llama.cpp `--mmproj`).")
    out += ["", "KLD: mean KL divergence from the base per token (lower is closer); same top: how often the "
            "quant's most likely next token is the base's; PPL ratio: perplexity against the base's. "
            "`SHA256SUMS` checks every file: `sha256sum -c SHA256SUMS`.", "",
            "## How the importance matrix was made", ""] + calibration_lines(facts, include_calibration,
                                                                             imatrix_name)
    base_name = b.get("file") or "BASE.gguf"
    # a code block: every line starts with a command word, so no value can close the fence
    out += ["", "## Rebuild each file", "", "```bash"]
    for q in facts.quants:
        out += q.rebuild_commands(base_name, imatrix_name)
    first = facts.quants[0].name  # published names are plain (letters, digits, ._+-)
    out += ["```", "", "## Use", "", "```bash",
            f"ollama create {first.removesuffix('.gguf').lower()} -f {first.removesuffix('.gguf')}.Modelfile",
            f"llama-cli -m {first}" + (f" --mmproj {mmproj_name}" if mmproj_name else ""),
            "```", "", "LM Studio: place the folder under its models directory; it reads the GGUF as is.", "",
            "## Versions", ""]
    out += [f"- {md_text(k, 60)}: {md_text(val, 500)}" for k, val in v.items()]
    out += ["", "## Caution", "", CAUTION, ""]
    return "\n".join(out)
