"""Per-tensor type overrides, as llama-quantize takes them: `--tensor-type PATTERN=TYPE`, `--tensor-type-file`
and `--prune-layers`; the one definition of their format and of which tensors a rule reaches.

llama.cpp (as vendored in llama-cpp-python 0.3.36) applies the rules in `src/llama-quant.cpp`: on each
tensor's name *after* pruned layers are renumbered, `std::regex_search` with each pattern in order, the first
match wins; only tensors llama.cpp quantizes at all (`resources/tensor_rules.toml`), only when the file's
type is a quantized one, never to token_embd.weight when a token-embedding type is given nor to output.weight
when an output type is given; and the block-size fallback still applies afterwards (a Q6_K override on rows of
640 values gives Q8_0). An overridden tensor skips the type's mixture logic, including its per-class layer
counters, so the tensors of that class after it are placed as if it were not there (in Q4_K_M, overriding
blk.0.ffn_down turns the last layer's ffn_down from Q6_K to Q4_K): a recipe should name every tensor of a
class or none. `tools/quantize/quantize.cpp` lowercases the pattern (ASCII only) and names the type
case-insensitively; llama-quantize says nothing when a pattern matches no tensor: `override_warnings` does.

Where medcal is stricter than llama-quantize, because llama-quantize would hang, abort or silently do
something else: a type must be one llama.cpp's quantizer writes (`[override] types` in tensor_rules.toml:
`attn_v=i32` parses there and then aborts the run); a pattern must pass tensor_patterns.check_pattern (bounded
matching time, read alike by llama.cpp and Python); two rules with the same pattern and different types are
refused (llama.cpp silently uses the first); a tensor type file is a regular UTF-8 file of at most 4 MiB,
100,000 lines of 4,096 characters and 10,000 rules, not empty; --prune-layers numbers are whole numbers
(llama.cpp's std::stoi reads "1e3" as 1).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError, ModelError
from medcal_gui.core.fsutil import write_text_atomic
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.resources import resources_dir
from medcal_gui.core.text_files import read_utf8
from medcal_gui.quantize.tensor_patterns import MAX_PATTERN_CHARS, MAX_WAYS_ALL, check_pattern, compiled

__all__ = ["check_pattern"]  # kept importable from here

MAX_FILE_BYTES = 4 * 1024 * 1024  # a recipe's file for a 3,000-tensor model is about 200 kB
MAX_LINES = 100_000
MAX_LINE_CHARS = 4096
MAX_RULES = 10_000  # one per tensor, as a recipe writes them, for the largest models
MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS
GGML_MAX_NAME = 64  # with its NUL
_SPACE = re.compile(r"[ \t\n\v\f\r]+")  # the C locale's isspace, as operator>> reads words
# Escapes whose meaning lowercasing flips (\S any non-space -> \s a space): llama-quantize lowercases silently.
_FLIPPED = re.compile(r"(?<!\\)(?:\\\\)*\\([DSWBAZ])")
_BLK = re.compile(r"blk\.(\d+)\.")


@dataclass(frozen=True)
class TensorTypeRule:
    """One `pattern=type`: a regular expression searched in tensor names and ggml's name for a type.
    Build it with `parse_tensor_type` (which lowercases the pattern as llama-quantize does)."""

    pattern: str
    type: str
    where: str = field(default="", compare=False, repr=False)  # "--tensor-type" or "FILE, line N": for errors

    @property
    def type_id(self) -> int:
        return ggml_types()[self.type.lower()]

    @property
    def text(self) -> str:
        return f"{self.pattern}={self.type}"

    def to_json(self) -> dict[str, str]:
        return {"pattern": self.pattern, "type": self.type}


@functools.cache
def ggml_types() -> dict[str, int]:
    """Lowercased ggml type name -> id, for every type the pinned ggml still supports (llama-quantize's
    parse_ggml_type walks the same table; removed ids have no blocks)."""
    from medcal_gui.llama import ggml_ctypes as gc

    return {gc.ggml_type_name(i).lower(): i for i in range(gc.GGML_TYPE_COUNT) if gc.ggml_blck_size(i) > 0}


@functools.cache
def override_types() -> dict[str, int]:
    """Lowercased name -> id of the types llama_model_quantize can write a tensor in (a --tensor-type rule's,
    --output-tensor-type's, --token-embedding-type's): the types ggml_quantize_chunk has a writer for. The
    others (i8 ... i64, f64, q8_1, q8_K) parse in llama-quantize, then abort the run."""
    names = _tensor_rules()["override"]["types"]
    return {n: ggml_types()[n] for n in names if n in ggml_types()}


def ggml_type_names() -> list[str]:
    """ggml's own spelling of each type a tensor can be quantized to ("q4_K", "q8_0", "bf16"), in id order."""
    from medcal_gui.llama import ggml_ctypes as gc

    return [gc.ggml_type_name(i) for i in sorted(override_types().values())]


def canonical_type(name: str, where: str = "--tensor-type", rule: str | None = None) -> str:
    """ggml's spelling of a type named in any case (q6_k -> q6_K; llama-quantize compares case-insensitively);
    InputError, naming `rule` when given and listing the valid types, for one llama.cpp cannot write."""
    from medcal_gui.llama import ggml_ctypes as gc

    type_id = override_types().get(name.lower())
    if type_id is not None:
        return gc.ggml_type_name(type_id)
    in_rule = f" (in the rule {rule!r})" if rule is not None else ""
    valid = f"Valid types: {', '.join(ggml_type_names())}."
    if name.lower() in ggml_types():
        raise InputError(f"{where}: {name!r} is a ggml type llama.cpp cannot quantize a tensor to{in_rule}: "
                         f"it has no writer for it and the run would abort. {valid}")
    raise InputError(f"{where}: {name!r} is not a ggml tensor type{in_rule}. {valid}")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(s: str) -> str:
    # std::transform(..., tolower) in the C locale: ASCII letters only
    return s.translate(_ASCII_LOWER)


def parse_tensor_type(text: str, where: str = "--tensor-type") -> TensorTypeRule:
    """`PATTERN=TYPE` as llama-quantize's parse_tensor_type reads it: split at the first `=`, the pattern
    lowercased, the type a ggml type name in any case."""
    name, sep, qtype = text.partition("=")
    if not sep:
        raise InputError(f"{where}: {text!r} is not PATTERN=TYPE (no '='), e.g. attn_v=q8_0.")
    if not name:
        raise InputError(f"{where}: {text!r} has no tensor name pattern before '=', e.g. attn_v=q8_0.")
    if not qtype:
        raise InputError(f"{where}: {text!r} has no type after '=', e.g. attn_v=q8_0.")
    flipped = _FLIPPED.search(name)
    if flipped:
        raise InputError(f"{where}: the pattern {name!r} uses \\{flipped.group(1)}, which llama-quantize turns "
                         f"into \\{flipped.group(1).lower()} (it lowercases patterns), the opposite meaning. "
                         "Write it another way, e.g. [^...].")
    pattern = _ascii_lower(name)
    check_pattern(pattern, where)
    return TensorTypeRule(pattern, canonical_type(qtype, where, text), where)


def read_tensor_type_file(path: Path) -> list[TensorTypeRule]:
    """A `--tensor-type-file`: whitespace-separated `pattern=type` tokens (llama-quantize reads it with
    `file >> arg`, so any ASCII whitespace separates and there are no comments); errors name the file and line.
    A FIFO, a device (/dev/zero) or a file over MAX_FILE_BYTES is refused before a byte is read."""
    path = Path(path)
    text = read_utf8(path, "tensor type file", limit=MAX_FILE_BYTES)
    if text.startswith("\ufeff"):
        raise InputError(f"{path} starts with a byte-order mark, which llama-quantize would take as part of the "
                         "first pattern. Save the file as UTF-8 without BOM.")
    if text.count("\n") >= MAX_LINES:
        raise InputError(f"The tensor type file {path} has {text.count(chr(10)) + 1:,} lines; medcal reads at most "
                         f"{MAX_LINES:,} (one PATTERN=TYPE rule a line). Is it the right file?")
    rules: list[TensorTypeRule] = []
    for n, line in enumerate(text.split("\n"), start=1):
        where = f"{path}, line {n}"
        if len(line) > MAX_LINE_CHARS:
            raise InputError(f"{where}: the line is {len(line):,} characters long; medcal reads lines of at most "
                             f"{MAX_LINE_CHARS:,} (one PATTERN=TYPE rule, a pattern of at most "
                             f"{MAX_PATTERN_CHARS:,} characters). Split it into several rules.")
        tokens = [t for t in _SPACE.split(line) if t]
        for text_rule in tokens:
            if len(tokens) > 1 and ("=" not in text_rule or text_rule.startswith("=") or text_rule.endswith("=")):
                raise InputError(f"{where}: {line.strip()!r} is not PATTERN=TYPE: llama-quantize splits it at the "
                                 "spaces (the file has no comments). Write one pattern=type a line, without spaces.")
            if len(rules) == MAX_RULES:
                raise InputError(f"{where}: the file holds more than {MAX_RULES:,} rules, medcal's limit (one per "
                                 "tensor is enough for the largest models). Is it the right file?")
            rules.append(parse_tensor_type(text_rule, where))
    if not rules:
        raise InputError(f"The tensor type file {path} holds no PATTERN=TYPE rule, so llama-quantize would apply "
                         "none. Write one rule a line (e.g. attn_v=q8_0), or leave the file out.")
    check_rules(rules)
    return rules


def check_rules(rules: Sequence[TensorTypeRule]) -> None:
    """InputError, naming where each rule came from, unless the rules of one quantization are within bounds:
    each pattern valid (check_pattern: rules built in code pass here too), at most MAX_RULES, their matching
    ways together within MAX_WAYS_ALL, and no pattern given twice with different types (llama.cpp would use
    the first and ignore the second without a word; the same rule twice only gets override_warnings' note)."""
    if len(rules) > MAX_RULES:
        raise InputError(f"{len(rules):,} tensor type rules; medcal takes at most {MAX_RULES:,} (one per tensor is "
                         "enough for the largest models).")
    seen: dict[str, TensorTypeRule] = {}
    total = 0
    for r in rules:
        where = r.where or "--tensor-type"
        total += check_pattern(r.pattern, where)
        canonical_type(r.type, where, r.text)
        first = seen.setdefault(r.pattern, r)
        if first is not r and first.type.lower() != r.type.lower():
            raise InputError(f"{where}: the rule {r.text!r} repeats the pattern of {first.text!r} "
                             f"({first.where or '--tensor-type'}) with another type; llama.cpp uses the first rule "
                             "that matches and would ignore this one. Keep one of them.")
    if total > MAX_WAYS_ALL:
        raise InputError(f"The {len(rules):,} tensor type rules together can match each tensor name in too many "
                         f"ways (about {total:.1e}; the limit is {MAX_WAYS_ALL:,}), and llama.cpp tries them for "
                         "every tensor. Use fewer repeats (*, +, ?) and alternatives (a|b): a leading or trailing "
                         "'.*' is never needed.")


def tensor_type_file_text(rules: Sequence[TensorTypeRule]) -> str:
    """The text of a tensor type file stock `llama-quantize --tensor-type-file` reads back as `rules`."""
    for r in rules:
        if not r.pattern or any(c.isspace() for c in r.pattern) or "=" in r.pattern:
            raise InputError(f"The pattern {r.pattern!r} cannot go in a tensor type file: llama-quantize reads "
                             "the file as words, so a pattern holds no spaces and no '='.")
    return "".join(r.text + "\n" for r in rules)


def write_tensor_type_file(path: Path, rules: Sequence[TensorTypeRule]) -> None:
    write_text_atomic(Path(path), tensor_type_file_text(rules))


def parse_prune_layers(text: str, where: str = "--prune-layers") -> list[int]:
    """`L0,L1,...`, whole numbers (spaces around them allowed), sorted, without duplicates. Stricter than
    llama-quantize's parse_layer_prune, whose std::stoi reads "1e3" or "1.5" as layer 1."""
    if text.count(",") >= MAX_LAYERS:
        raise InputError(f"{where}: {text.count(',') + 1:,} layer numbers; a model has at most {MAX_LAYERS} "
                         "layers (llama.cpp's limit). Give each layer to leave out once, e.g. 0,1,2.")
    layers: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*\+?(\d{1,10})\s*", part)
        if not m or int(m.group(1)) > 2**31 - 1:
            raise InputError(f"{where}: {part.strip()[:40]!r} is not a layer number: give the layers to leave out "
                             "as whole numbers, e.g. 0,1,2.")
        layers.add(int(m.group(1)))
    return sorted(layers)


@functools.cache
def _tensor_rules() -> dict[str, Any]:
    with open(resources_dir() / "tensor_rules.toml", "rb") as fh:
        return tomllib.load(fh)


def quantizable(name: str, ne: Sequence[int]) -> bool:
    """Whether llama_model_quantize quantizes this tensor at all (tensor_allows_quantization)."""
    n_dims = max((i + 1 for i, d in enumerate(ne) if d > 1), default=1)  # ggml_n_dims
    rules = _tensor_rules()["quantizable"]
    return (n_dims >= 2 and name.endswith("weight") and name not in rules["never_names"]
            and not any(s in name for s in rules["never_substrings"]))


def fallback_type(type_name: str, ncols: int) -> str:
    """The type a tensor with rows of `ncols` values really gets when `type_name` is asked for."""
    from medcal_gui.llama import ggml_ctypes as gc

    types = ggml_types()
    if ncols % gc.ggml_blck_size(types[type_name.lower()]) == 0:
        return type_name
    new = _tensor_rules()["fallback"].get(type_name, type_name)
    if ncols % gc.ggml_blck_size(types[new.lower()]) != 0:
        new = "f16"
    return str(new)


@dataclass(frozen=True)
class ModelTensor:
    name: str  # as llama.cpp sees it when the rules apply: after pruned layers are renumbered
    ne: tuple[int, ...]
    n_bytes: int
    type: str  # ggml name of the input's type


def renumber(name: str, prune: Sequence[int]) -> str | None:
    """`name` once `prune` is applied (llama-quant.cpp's remap_layer): None for a pruned layer's tensor,
    later layers renumbered down."""
    m = _BLK.search(name)
    if not prune or not m:
        return name
    blk = int(m.group(1))
    if blk in prune:
        return None
    new = blk - sum(1 for p in set(prune) if p < blk)
    return name[:m.start(1)] + str(new) + name[m.end(1):]


def model_tensors(model: Path, prune_layers: Sequence[int] = ()) -> list[ModelTensor]:
    """The tensors of `model` (header only), named as after `prune_layers`; InputError for a layer the model
    does not have. Remembered for the last few file versions: the window asks again at each edit."""
    try:
        st = Path(model).stat()
    except OSError:
        return _model_tensors(str(model), 0, 0, tuple(prune_layers))  # open_gguf explains
    return list(_model_tensors(str(Path(model).resolve()), st.st_size, st.st_mtime_ns, tuple(prune_layers)))


@functools.lru_cache(maxsize=8)
def _model_tensors(path: str, _size: int, _mtime_ns: int, prune_layers: tuple[int, ...]) -> list[ModelTensor]:
    from medcal_gui.gguf_files.gguf_check import model_header
    from medcal_gui.llama import ggml_ctypes as gc

    model = Path(path)
    header = model_header(model)  # the quick reader: the window asks at each edit
    n_layers = block_count(header.fields)
    bad = [p for p in prune_layers if p >= n_layers]
    if bad:
        more = f" and {len(bad) - 5:,} more" if len(bad) > 5 else ""
        raise InputError(f"--prune-layers: {model.name} has {n_layers} layers (0-{n_layers - 1}); there is no "
                         f"layer {', '.join(map(str, bad[:5]))}{more}.")
    if prune_layers and len(set(prune_layers)) >= n_layers:
        raise InputError(f"--prune-layers would remove every one of the {n_layers} layers of {model.name}.")
    out: list[ModelTensor] = []
    for t in header.tensors:
        name = renumber(t.name, prune_layers)
        if name is not None:
            out.append(ModelTensor(name, tuple(int(x) for x in t.shape), int(t.n_bytes),
                                   gc.ggml_type_name(int(t.tensor_type))))
    return out


def block_count(fields: Mapping[str, Any]) -> int:
    arch = fields["general.architecture"]
    n = fields.get(f"{arch}.block_count")
    if not isinstance(n, int):
        raise ModelError(f"The model has no {arch}.block_count entry, so its layers cannot be counted.")
    return n


@dataclass
class RuleMatch:
    """What one rule takes under first-match semantics: the tensors, their bytes in the input, the bytes they
    will take (estimated from the type's row size), and how many fall back to another type."""

    rule: TensorTypeRule
    tensors: list[str] = field(default_factory=list)
    input_bytes: int = 0
    output_bytes: int = 0
    fallback: int = 0
    shadowed: int = 0  # tensors the pattern matches that an earlier rule took

    def to_json(self) -> dict[str, Any]:
        return {"pattern": self.rule.pattern, "type": self.rule.type, "tensors": len(self.tensors),
                "names": list(self.tensors), "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
                "fallback": self.fallback, "shadowed": self.shadowed}


def match_tensors(model: Path, rules: Sequence[TensorTypeRule], *, prune_layers: Sequence[int] = (),
                  token_embedding_type: str | None = None, output_tensor_type: str | None = None,
                  cancel: CancelToken | None = None) -> list[RuleMatch]:
    """For each rule, the tensors of `model` it sets, as llama_model_quantize applies the rules. Each
    pattern's matching time is bounded (check_pattern) and `cancel` is checked at each tensor: a SIGTERM,
    which Python's re lets its handler see, stops it there."""
    from medcal_gui.llama import ggml_ctypes as gc

    patterns = [compiled(r.pattern, r.where or "--tensor-type") for r in rules]
    matches = [RuleMatch(r) for r in rules]
    for t in model_tensors(Path(model), prune_layers):
        if cancel is not None:
            cancel.check()
        if len(t.name) >= GGML_MAX_NAME:  # the bound check_pattern's is computed for; llama.cpp refuses them
            raise ModelError(f"{Path(model).name} has a tensor name of {len(t.name):,} characters "
                             f"({t.name[:40]!r}...); llama.cpp takes at most {GGML_MAX_NAME - 1}.")
        if not quantizable(t.name, t.ne):
            continue
        if output_tensor_type and t.name == "output.weight":
            continue
        if token_embedding_type and t.name == "token_embd.weight":
            continue  # (per_layer_token_embd.weight, also an embedding, does take a rule that names it)
        hits = [i for i, rx in enumerate(patterns) if rx.search(t.name)]
        if not hits:
            continue
        m = matches[hits[0]]
        for i in hits[1:]:
            matches[i].shadowed += 1
        m.tensors.append(t.name)
        m.input_bytes += t.n_bytes
        real = fallback_type(m.rule.type, t.ne[0])
        m.fallback += real != m.rule.type
        rows = 1
        for d in t.ne[1:]:
            rows *= d
        m.output_bytes += gc.ggml_row_size(ggml_types()[real.lower()], t.ne[0]) * rows
    return matches


def override_warnings(matches: Sequence[RuleMatch]) -> list[str]:
    """Plain-words warnings for rules that set nothing or whose type some tensors cannot take."""
    out: list[str] = []
    for m in matches:
        if not m.tensors and m.shadowed:
            out.append(f"The tensor type rule {m.rule.text} sets no tensor: the {m.shadowed} tensor(s) it matches "
                       "are all taken by an earlier rule (the first matching rule wins). Move it up or drop it.")
        elif not m.tensors:
            out.append(f"The tensor type rule {m.rule.text} matches no quantized tensor of this model, so it "
                       "changes nothing. Check the pattern against the tensor names (e.g. blk.0.attn_v.weight).")
        elif m.fallback:
            out.append(f"{m.fallback} of the {len(m.tensors)} tensors the rule {m.rule.text} sets cannot take "
                       f"{m.rule.type} (their rows are not a multiple of its block size) and get a fallback "
                       "type instead, as llama-quantize does.")
    return out


def tt_pairs(rules: Sequence[TensorTypeRule]) -> list[tuple[str, int]]:
    """The rules as (pattern, ggml type id) pairs for llama_model_quantize_params.tt_overrides."""
    return [(r.pattern, r.type_id) for r in rules]


def override_checks(model: Path, rules: Sequence[TensorTypeRule], prune_layers: Sequence[int], float_type: bool,
                    token_embedding_type: str | None = None, output_tensor_type: str | None = None,
                    cancel: CancelToken | None = None) -> tuple[list[RuleMatch], list[str]]:
    """What `rules` will set in `model` and the warnings to show (InputError for a layer it lacks or for rules
    out of bounds: check_rules), for a quantization to a float type (`float_type`: llama.cpp then applies no
    rule) or a quantized one."""
    if not rules and not prune_layers:
        return [], []
    check_rules(rules)
    matches = match_tensors(model, rules, prune_layers=prune_layers, token_embedding_type=token_embedding_type,
                            output_tensor_type=output_tensor_type, cancel=cancel)
    if rules and float_type:
        return [RuleMatch(r) for r in rules], [
            "llama.cpp applies tensor type rules only when quantizing to a quantized type; this file's type is "
            "a float one, so the rules change nothing. Choose a quantized type (e.g. Q8_0) for them to apply."]
    return matches, override_warnings(matches)
