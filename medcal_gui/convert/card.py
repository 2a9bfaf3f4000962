"""The `general.*` metadata of a converted model: name, basename, size label, license, tags, base models,
sampling settings, as llama.cpp's converter derives them (gguf's own `Metadata` heuristics), from inputs that
medcal reads and checks itself.

gguf's `Metadata.load` read README.md, config.json and generation_config.json on its own: broken YAML front
matter, a non-UTF-8 README or a `version: 1.0` (a float where it writes a string) ended in a traceback, and a
`model_name` holding a newline went into `general.name` as it was, from where it reaches an Ollama Modelfile
downstream (`SYSTEM ...` as an instruction of its own). Here the front matter is parsed as gguf parses it, its
values are kept only in the shapes the heuristics expect, and every free-text value loses its line breaks and
control characters, with a warning that names the file and key.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.convert.folder import (
    MAX_TEXT_BYTES,
    FolderFileError,
    present,
    read_json,
    read_text,
)

README = "README.md"
MAX_FRONT_MATTER = 256 * 1024  # a model card's front matter is a few dozen lines; YAML is parsed in Python
# the heuristics' one-value keys (model card conventions of Hugging Face and of llama.cpp)
SCALAR_KEYS = (
    "name", "author", "version", "organization", "description", "finetune", "basename", "size_label", "url", "doi",
    "uuid", "repo_url", "model_name", "model_author", "model_version", "model_organization", "model_description",
    "model_finetune", "model_basename", "model_size_label", "model_url", "model_doi", "model_uuid",
    "model_repo_url", "model_creator", "model_type", "license_name", "license_link",
)
LIST_KEYS = ("license", "tags", "pipeline_tag", "languages", "language")  # a string or a list of strings
REF_KEYS = ("base_model", "base_models", "base_model_sources", "datasets", "dataset", "dataset_sources")
REF_FIELDS = ("name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url")
# generation_config.json: gguf key suffix <- (file key, whole number?)
SAMPLING: dict[str, tuple[str, bool]] = {
    "top_k": ("top_k", True), "top_p": ("top_p", False), "min_p": ("min_p", False),
    "xtc_probability": ("xtc_probability", False), "xtc_threshold": ("xtc_threshold", False),
    "temp": ("temperature", False), "penalty_last_n": ("penalty_last_n", True),
    "penalty_repeat": ("penalty_repeat", False), "mirostat": ("mirostat", True),
    "mirostat_tau": ("mirostat_tau", False), "mirostat_eta": ("mirostat_eta", False),
}
# C0 and C1 controls (line feed, carriage return, NEL ...), the Unicode line and paragraph separators, and the
# bidirectional overrides that make text read other than it is
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def one_line(text: str) -> tuple[str, bool]:
    """`text` with each run of control characters a space, ends stripped; and whether anything inside it
    changed (a trailing newline, as a YAML block scalar ends, is no news)."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat, flat != text.strip()


@dataclass
class ModelCard:
    fields: dict[str, Any] = field(default_factory=dict)  # front matter, only the keys and shapes used
    name_or_path: str | None = None  # config.json's _name_or_path
    folder_name: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)  # general.sampling.<key>: value
    warnings: list[str] = field(default_factory=list)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Cleaner:
    def __init__(self, path: Path, warnings: list[str]) -> None:
        self.path = path
        self.warnings = warnings

    def text(self, key: str, value: Any) -> str | None:
        """A free-text value as one line; numbers and dates as they read; anything else dropped (warned)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif isinstance(value, (_dt.date, _dt.datetime)):
            value = value.isoformat()
        if not isinstance(value, str):
            self.warnings.append(f'{self.path}: "{key}" is {_show(value)}; medcal leaves it out of the GGUF. '
                                 'Write it as one line of text in quotes (key: "text").')
            return None
        flat, changed = one_line(value)
        if changed:
            self.warnings.append(f'{self.path}: "{key}" holds line breaks or control characters; medcal writes it '
                                 f"as one line: {flat[:80]!r}. Write it on one line.")
        return flat

    def texts(self, key: str, value: Any) -> list[str] | str | None:
        if not isinstance(value, list):
            return self.text(key, value)
        out = [t for i, v in enumerate(value) if (t := self.text(f"{key}[{i}]", v)) is not None]
        return out

    def refs(self, key: str, value: Any) -> list[Any] | str | None:
        items = value if isinstance(value, list) else [value]
        out: list[Any] = []
        for i, v in enumerate(items):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            if isinstance(v, dict):
                kept = {f: t for f in REF_FIELDS if f in v and (t := self.text(f"{where}.{f}", v[f])) is not None}
                out.append(kept)
            elif (t := self.text(where, v)) is not None:
                out.append(t)
        return out if isinstance(value, list) else (out[0] if out else None)


def _front_matter(hf_dir: Path) -> tuple[Path, dict[str, Any]]:
    """README.md's YAML front matter, cut out as gguf's `Metadata.load_model_card` cuts it."""
    import yaml

    path = hf_dir / README
    if not present(path):
        return path, {}
    content = read_text(hf_dir, path, "model card", limit=MAX_TEXT_BYTES,
                        fix="Save it as UTF-8, or delete README.md (medcal reads only its front matter).")
    lines = content.splitlines()
    if not lines or lines[0] != "---":
        return path, {}
    body: list[str] = []
    for line in lines[1:]:
        if line == "---":
            break
        body.append(line)
    yaml_text = "\n".join(body) + "\n"
    if len(yaml_text) > MAX_FRONT_MATTER:
        raise FolderFileError(f"{path}: the YAML front matter (between the first two '---' lines) is "
                              f"{len(yaml_text) // 1024} KB; a model card's is a few lines, and medcal reads at most "
                              f"{MAX_FRONT_MATTER // 1024} KB. Shorten it, or delete README.md.")
    # gguf's own fixes: the "Norway problem" (- no read as false) and tabs, which YAML does not allow
    yaml_text = yaml_text.replace("- no\n", '- "no"\n').replace("\t", "  ")
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f", line {mark.line + 2}" if mark is not None else ""  # +1: from 1, +1: the opening '---'
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FolderFileError(f"{path}{where}: the model card's YAML front matter (between the first two '---' "
                              f"lines) cannot be read ({problem}). Correct that line, or delete the front matter: "
                              "medcal reads only the name, license and tags from it.") from None
    except RecursionError:
        raise FolderFileError(f"{path}: the model card's YAML front matter is nested too deeply to read. Delete "
                              "the front matter (between the first two '---' lines).") from None
    return path, data if isinstance(data, dict) else {}


def _sampling(hf_dir: Path, warnings: list[str]) -> dict[str, Any]:
    path = hf_dir / "generation_config.json"
    gen = read_json(hf_dir, path, "generation config")
    if not isinstance(gen, dict):
        return {}
    out: dict[str, Any] = {}
    keys = dict(SAMPLING)
    if gen.get("penalty_repeat") is None:  # transformers' name; gguf-py of llama.cpp 0.3.36 reads it too
        keys["penalty_repeat"] = ("repetition_penalty", False)
    for gkey, (fkey, whole) in keys.items():
        v = gen.get(fkey)
        if v is None:
            continue
        ok = isinstance(v, int) and not isinstance(v, bool) if whole else (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        if ok and -(2**31) <= v < 2**31:
            out[gkey] = v
        else:
            what = "a whole number" if whole else "a number"
            warnings.append(f'{path}: "{fkey}" is {_show(v)}; medcal leaves it out of the GGUF (write {what}, '
                            f'e.g. "{fkey}": {64 if whole else 0.95}).')
    seq = gen.get("sequence")
    if isinstance(seq, str):
        out["sequence"] = one_line(seq)[0]
    return out


def read_card(hf_dir: Path, config: dict[str, Any]) -> ModelCard:
    """What the general.* metadata is made of, read and checked (before any conversion work)."""
    card = ModelCard()
    path, data = _front_matter(hf_dir)
    clean = _Cleaner(path, card.warnings)
    for key in SCALAR_KEYS:
        if data.get(key) is not None and (t := clean.text(key, data[key])) is not None:
            card.fields[key] = t
    for key in LIST_KEYS:
        if data.get(key) is not None and (ts := clean.texts(key, data[key])) is not None:
            card.fields[key] = ts
    for key in REF_KEYS:
        if data.get(key) is not None and (refs := clean.refs(key, data[key])) is not None:
            card.fields[key] = refs
    cfg_clean = _Cleaner(hf_dir / "config.json", card.warnings)
    if "_name_or_path" in config:
        card.name_or_path = cfg_clean.text("_name_or_path", config["_name_or_path"])
    raw_name = hf_dir.name or hf_dir.resolve().name  # "." names the folder it is
    name, changed = one_line(raw_name)
    if changed:
        card.warnings.append(f"The model folder's name {raw_name!r} holds line breaks or control characters; "
                             f"medcal names the model {name!r}. Rename the folder.")
    card.folder_name = name
    card.sampling = _sampling(hf_dir, card.warnings)
    return card


def _flat(value: Any) -> Any:
    if isinstance(value, str):
        return one_line(value)[0]
    if isinstance(value, list):
        return [_flat(v) for v in value]
    if isinstance(value, dict):
        return {k: _flat(v) for k, v in value.items()}
    return value


def _flatten_all(meta: Any) -> None:
    """Every string the metadata holds, as one line: whatever the heuristics made of the inputs above (they are
    one line already; this is the last line of defence, for general.name above all)."""
    for key, value in vars(meta).items():
        setattr(meta, key, _flat(value))


def add_general_metadata(w: Any, card: ModelCard, n_params: int) -> None:
    """general.name, basename, size_label, license, tags, ... and general.sampling.* from generation_config.json,
    written by gguf's own `Metadata` heuristics, as llama.cpp's converter writes them ("tiny-medgemma" becomes
    "Tiny Medgemma"; the size label counts the tensors written)."""
    import gguf

    hf_params = {"_name_or_path": card.name_or_path} if card.name_or_path is not None else {}
    # the heuristics read only the folder's name from the path
    meta = gguf.Metadata.apply_metadata_heuristic(gguf.Metadata(), copy.deepcopy(card.fields), hf_params,
                                                  Path(card.folder_name or "model"), n_params)
    for key, value in card.sampling.items():
        setattr(meta, f"sampling_{key}", value)
    if meta.name is None:
        meta.name = card.folder_name
    if meta.size_label is None and n_params > 0:
        meta.size_label = gguf.size_label(n_params, 0, 0, 0)
    _flatten_all(meta)
    meta.set_gguf_meta_model(w)
