"""The JSON files the hand-over reads, checked against the shape medcal writes them in before any value is
used: quantize manifests, `ladder.json`, `medcal eval --json`, the behaviour checks' JSON, the dataset log and a
folder's `publish.json`.

Each file is read bounded (`core.text_files`: no FIFO, device or oversize file; invalid or too deeply nested
JSON is a one-line error at the file), then each key the hand-over uses is checked for its type. A wrong one
is a DataError naming the file, the key (`rungs[2].kld_mean`) and what to write instead: a ladder of the wrong
shape raised KeyError / TypeError tracebacks, and a manifest's type `../../x` became a file name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.text_files import loads_json, read_utf8

JSON_LIMIT = 64 * 1024 * 1024  # a manifest of a 27B model's tensors is a few MB
MAX_DEPTH = 48  # medcal's own files are 5 deep; a deeper one is not one of them
MAX_ITEMS = 1000  # rungs, models, flips: a ladder has a dozen
MAX_TEXT = 100_000
_SHA = re.compile(r"[0-9a-f]{64}")
_WORD = re.compile(r"[A-Za-z0-9_]{1,32}")

# kinds: num, int (>= 0), str, bool, sha (64 lowercase hex digits), qtype (a quantization type of the table),
# word (a ggml type name such as q8_0), pct ({"k", "n", "value"}), strmap (names to scalars), strlist; a dict
# is a nested object, [dict] a list of them. A "!" suffix: the key must be there and not null; otherwise a
# missing key or null is fine (a figure nobody measured).
Spec = dict[str, Any]

MANIFEST: Spec = {
    "input": {"path": "str", "sha256": "sha", "bytes": "int"},
    "output": {"path": "str", "sha256": "sha", "bytes": "int"},
    "type": {"name": "qtype", "ftype": "int"},
    "imatrix": {"path": "str", "sha256": "sha", "entries": "int", "chunk_count": "int", "chunk_size": "int",
                "datasets": "strlist"},
    "options": {"threads": "int", "pure": "bool", "allow_requantize": "bool", "output_tensor_type": "word",
                "token_embedding_type": "word"},
    "metadata_written": {"medcal.calibration.sha256": "sha"},
    "versions": "strmap",
}
LADDER: Spec = {
    "rungs": [{"type": "str!", "file": "str", "bytes": "int", "bpw": "num", "sha256": "str", "kld_mean": "num!",
               "kld_median": "num", "kld_p99": "num", "same_top_pct": "num", "ppl_ratio": "num",
               "pp_tokens_per_s": "num", "tg_tokens_per_s": "num", "speedup_tg": "num", "pareto": "bool"}],
    "recommendation": {"type": "str", "reason": "str"},
}
EVAL: Spec = {
    "text": "str", "chunks": "int", "n_ctx": "int", "tokens_scored": "int",
    "models": [{"model": "str", "name": "str", "sha256": "str", "kld_mean": "num", "kld_p99": "num",
                "kld_median": "num", "same_top_pct": "num", "ppl_ratio": "num", "rms_dp_pct": "num",
                "tokens_per_s": "num"}],
}
AGREE: Spec = {
    "n_prompts": "int", "decoding": "str",
    "models": [{"model": "str", "name": "str", "sha256": "str", "identical": "pct", "facts_kept": "pct",
                "rouge_l_mean": "num"}],
}
MCQ: Spec = {
    "n_questions": "int",
    "models": [{"model": "str", "name": "str", "sha256": "str", "accuracy": "pct"}],
    "flips": [{"a": "str", "b": "str", "n_lost": "int", "n_gained": "int", "mcnemar_p": "num"}],
}
DATASET_LOG: Spec = {"record_count": "int", "population_statistics": "strmap", "variant": "str", "layout": "str",
                     "token_estimate_total": "num", "created": "str"}
PUBLISH: Spec = {"model_name": "str", "base_sha256": "sha", "files": "strlist"}

# what to write instead, per file: the command whose output it is
SOURCE = {"quantize manifest": "quantize the file again (`medcal quantize` writes the manifest), or remove "
                               "the manifest",
          "ladder": "pass the ladder.json `medcal ladder` wrote", "eval": "pass what `medcal eval --json` printed",
          "agreement": "pass what `medcal agree --json` printed",
          "multiple-choice": "pass what `medcal mcq --json` printed",
          "calibration dataset log": "pass the calibration_dataset_log.json `medcal format` wrote",
          "publish manifest": "publish into another folder (this publish.json was not written by medcal)"}
_WANT = {"num": "a number such as 0.0123", "int": "a whole number such as 12", "str": "a text in quotes",
         "bool": "true or false", "sha": "a sha256 (64 hex digits)", "word": "a ggml type name such as q8_0",
         "pct": 'an object such as {"k": 7, "n": 10, "value": 0.7}',
         "strmap": 'an object of names such as {"medcal": "1.0"}', "strlist": 'a list of texts such as ["a.txt"]',
         "object": "an object {…}", "list": "a list […]"}


def _show(v: Any) -> str:
    import json

    kind = {bool: "true/false", int: "a number", float: "a number", str: "a text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)
    try:
        text = json.dumps(v, ensure_ascii=True)
    except (ValueError, RecursionError):
        text = "…"
    if v is None:
        return "null"
    return (text if len(text) <= 40 else text[:37] + "…") + f" ({kind})"


def _fail(path: Path, what: str, key: str, value: Any, want: str) -> DataError:
    return DataError(f'the {what}\'s key "{key}" holds {_show(value)}: write {want} there, or '
                     f"{SOURCE.get(what, 'pass the file medcal wrote')}.", str(path))


def _depth(doc: Any) -> int:
    deepest, stack = 0, [(doc, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
    return deepest


def _check_kind(v: Any, kind: str, key: str, path: Path, what: str) -> None:
    from medcal_gui.quantize.quant_types import get_quant_type

    ok = True
    if kind == "num":  # an int past 2**63 cannot become a float for printing (OverflowError)
        ok = isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63)
    elif kind == "int":
        ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
    elif kind == "str":
        ok = isinstance(v, str) and len(v) <= MAX_TEXT
    elif kind == "bool":
        ok = isinstance(v, bool)
    elif kind == "sha":
        ok = isinstance(v, str) and bool(_SHA.fullmatch(v))
    elif kind == "word":
        ok = isinstance(v, str) and bool(_WORD.fullmatch(v))
    elif kind == "qtype":
        try:
            ok = isinstance(v, str) and bool(_WORD.fullmatch(v)) and get_quant_type(v).name == v
        except InputError:
            ok = False
        if not ok:
            raise _fail(path, what, key, v, "a quantization type such as Q4_K_M (one of `medcal quantize "
                                            "--help`'s types)")
    elif kind == "pct":
        ok = isinstance(v, dict)
        if ok:
            for k, sub in (("k", "int"), ("n", "int"), ("value", "num")):
                _check_kind(v.get(k), sub, f"{key}.{k}", path, what)
    elif kind == "strmap":
        ok = isinstance(v, dict) and len(v) <= MAX_ITEMS and all(
            isinstance(x, str | int | float | bool) and len(str(x)) <= MAX_TEXT for x in v.values())
    elif kind == "strlist":
        ok = isinstance(v, list) and len(v) <= MAX_ITEMS and all(isinstance(x, str) and len(x) <= MAX_TEXT
                                                                  for x in v)
    if not ok:
        raise _fail(path, what, key, v, _WANT[kind])


def check_shape(doc: dict[str, Any], spec: Spec, path: Path, what: str, prefix: str = "") -> None:
    """Raise a DataError at the first key of `doc` whose value is not of the kind `spec` names."""
    for key, kind in spec.items():
        name = f"{prefix}{key}"
        v = doc.get(key)
        required = isinstance(kind, str) and kind.endswith("!")
        if v is None:
            if required:
                raise _fail(path, what, name, v, _WANT[kind.rstrip("!")])
            continue
        if isinstance(kind, dict):
            if not isinstance(v, dict):
                raise _fail(path, what, name, v, _WANT["object"])
            check_shape(v, kind, path, what, name + ".")
        elif isinstance(kind, list):
            if not isinstance(v, list) or len(v) > MAX_ITEMS:
                raise _fail(path, what, name, v, _WANT["list"] + f" of at most {MAX_ITEMS} objects")
            for i, item in enumerate(v):
                if not isinstance(item, dict):
                    raise _fail(path, what, f"{name}[{i}]", item, _WANT["object"])
                check_shape(item, kind[0], path, what, f"{name}[{i}].")
        else:
            _check_kind(v, kind.rstrip("!"), name, path, what)


SPECS = {"quantize manifest": MANIFEST, "ladder": LADDER, "eval": EVAL, "agreement": AGREE,
         "multiple-choice": MCQ, "calibration dataset log": DATASET_LOG, "publish manifest": PUBLISH}


def read_json(path: Path | None, what: str) -> dict[str, Any] | None:
    """The JSON object in `path`, its keys checked against the shape medcal writes `what` in (`SPECS`)."""
    if path is None:
        return None
    path = Path(path)
    hint = SOURCE.get(what, "pass the file medcal wrote")
    text = read_utf8(path, f"{what} file", limit=JSON_LIMIT, not_utf8_hint=f" {hint[0].upper()}{hint[1:]}.")
    try:
        doc = loads_json(text, f"{what} file", path)
    except DataError as exc:  # loads_json names the file and the line; add what to give instead
        raise DataError(f"{exc.message} {hint[0].upper()}{hint[1:]}.") from None
    except ValueError as exc:  # an integer of more than 4300 digits: Python's own limit, not JSON's
        raise DataError(f"the {what} file holds a number too long to read ({str(exc).split(':')[0]}): "
                        f"{hint}.", str(path)) from None
    if not isinstance(doc, dict):
        raise DataError(f"the {what} file holds {_show(doc)}, not a JSON object {{…}}: "
                        f"{SOURCE.get(what, 'pass the file medcal wrote')}.", str(path))
    if _depth(doc) > MAX_DEPTH:
        raise DataError(f"the {what} file is JSON nested more than {MAX_DEPTH} deep, which medcal never writes: "
                        f"{SOURCE.get(what, 'pass the file medcal wrote')}.", str(path))
    spec = SPECS.get(what)
    if spec is not None:
        check_shape(doc, spec, path, what)
    return doc
