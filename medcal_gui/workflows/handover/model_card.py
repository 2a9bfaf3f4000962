"""README.md for a publish folder: a model card with YAML front matter that hubs read (base_model,
base_model_relation, license, tags, pipeline_tag), then plain sections a person reads.

Never holds calibration text: only the dataset log's counts and the hashes.
"""

from __future__ import annotations

import json
from typing import Any

from medcal_gui.workflows.handover.publish_facts import PublishFacts, QuantFile

TAGS = ("gguf", "medical", "imatrix", "quantized", "llama.cpp", "medcal")
CAUTION = ("A quantized model is a different model. Its figures above were measured on the texts named here, "
           "not in clinical use: validate this file on your own cases, under your own governance, before "
           "anyone relies on what it writes. It is not a medical device.")


def _yaml_str(v: object) -> str:
    # JSON strings are valid YAML scalars and escape everything that needs it
    return json.dumps(str(v), ensure_ascii=False)


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


def pct_text(p: Any) -> str:
    if isinstance(p, dict) and p.get("n"):
        return f"{100 * float(p['value']):.0f} % ({p['k']}/{p['n']})"
    return "–"


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def speed_text(f: dict[str, Any]) -> str:
    if f.get("tg_tokens_per_s"):
        s = f"{f['tg_tokens_per_s']:.1f} tok/s gen"
        return s + (f" ({f['speedup_tg']:.2f}×)" if f.get("speedup_tg") else "")
    if f.get("eval_tokens_per_s"):
        return f"{f['eval_tokens_per_s']:.0f} tok/s eval"
    return "–"


def file_row(q: QuantFile) -> list[str]:
    f = q.figures
    return [q.name, q.qtype, f"{q.bytes / 1e6:,.1f} MB", _num(f.get("bpw"), ".2f"), _num(f.get("kld_mean"), ".5f"),
            _num(f.get("same_top_pct"), ".1f") + (" %" if f.get("same_top_pct") is not None else ""),
            _num(f.get("ppl_ratio"), ".4f"), speed_text(f), pct_text(f.get("agreement")), pct_text(f.get("accuracy"))]


FILE_HEAD = ["file", "type", "size", "bpw", "KLD mean", "same top", "PPL ratio", "speed", "agreement", "accuracy"]


def calibration_lines(facts: PublishFacts, include_calibration: bool) -> list[str]:
    c, im = facts.calibration or {}, facts.imatrix or {}
    out: list[str] = []
    if not im and not c:
        return ["No importance matrix was recorded for these files."]
    if im:
        out.append(f"- Importance matrix: `{im.get('file')}`, sha256 `{im.get('sha256')}`"
                   + (f", {im['entries']} entries" if im.get("entries") else ""))
        if im.get("chunk_count"):
            out.append(f"- Computed over {im['chunk_count']} chunks of {im.get('chunk_size')} tokens "
                       f"({im.get('tokens', 0):,} tokens)" + (f" of `{', '.join(im['datasets'])}`"
                                                             if im.get("datasets") else ""))
    if c.get("records") is not None:
        pops = ", ".join(f"{n} {k}" for k, n in sorted((c.get("populations") or {}).items()))
        out.append(f"- Calibration set: {c['records']} records ({pops or 'no populations recorded'}), "
                   f"variant `{c.get('variant')}`, layout `{c.get('layout')}`, about {c.get('token_estimate')} "
                   "tokens (estimate)")
    if c.get("sha256"):
        out.append(f"- Calibration text sha256 `{c['sha256']}`" + (f" ({c['bytes']:,} bytes)" if c.get("bytes")
                                                                  else ""))
    out.append(f"- The calibration text is included as `{c.get('file')}`." if include_calibration else
               "- The calibration text itself is not part of this folder (it may hold clinical text); "
               "its hash identifies it.")
    return out


def render_card(facts: PublishFacts, *, imatrix_name: str | None, mmproj_name: str | None,
                include_calibration: bool = False) -> str:
    b = facts.base
    title = b.get("name") or facts.model_name
    lic = b.get("license_name") or b.get("license")
    out = [front_matter(facts), "", f"# {facts.model_name} GGUF (quantized)", "",
           f"Quantized GGUF files of **{title}**, made with medcal {facts.versions.get('medcal')} "
           f"(llama.cpp through llama-cpp-python {facts.versions.get('llama_cpp_python', 'unknown')}).", "",
           "## The base model", ""]
    out.append(f"- Base file: `{b.get('file') or 'not given'}`, sha256 `{b.get('sha256') or 'not recorded'}`")
    if b.get("architecture"):
        out.append(f"- Architecture: {b['architecture']}, {int(b.get('parameters') or 0):,} parameters")
    out.append(f"- Licence: {lic} (the base's terms apply to these files)" if lic else
               "- Licence: the base's metadata names none; the base's own terms apply to these files.")
    if b.get("license_link"):
        out.append(f"- Licence terms: {b['license_link']}")
    if b.get("organization") or b.get("repo_url"):
        out.append(f"- From: {b.get('organization') or ''} {b.get('repo_url') or ''}".rstrip())
    out += ["", "Intended use (from the base's metadata):", "",
            f"> {b['description']}" if b.get("description") else "> The base's metadata gives no description.",
            "", "## Files", "", "| " + " | ".join(FILE_HEAD) + " |", "|" + "---|" * len(FILE_HEAD)]
    out += ["| " + " | ".join(file_row(q)) + " |" for q in facts.quants]
    if mmproj_name:
        out.append(f"\nThe vision projector `{mmproj_name}` goes with every file (llama.cpp `--mmproj`).")
    out += ["", "KLD: mean KL divergence from the base per token (lower is closer); same top: how often the "
            "quant's most likely next token is the base's; PPL ratio: perplexity against the base's. "
            "`SHA256SUMS` checks every file: `sha256sum -c SHA256SUMS`.", "",
            "## How the importance matrix was made", ""] + calibration_lines(facts, include_calibration)
    base_name = b.get("file") or "BASE.gguf"
    out += ["", "## Rebuild each file", "", "```bash"]
    for q in facts.quants:
        out += q.rebuild_commands(base_name, imatrix_name)
    out += ["```", "", "## Use", "", "```bash",
            f"ollama create {facts.quants[0].name.removesuffix('.gguf').lower()} -f "
            f"{facts.quants[0].name.removesuffix('.gguf')}.Modelfile",
            f"llama-cli -m {facts.quants[0].name}" + (f" --mmproj {mmproj_name}" if mmproj_name else ""),
            "```", "", "LM Studio: place the folder under its models directory; it reads the GGUF as is.", "",
            "## Versions", ""]
    out += [f"- {k}: {v}" for k, v in facts.versions.items()]
    out += ["", "## Caution", "", CAUTION, ""]
    return "\n".join(out)
