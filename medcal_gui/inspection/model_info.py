"""What a GGUF model is, read from its header with gguf's reader (no llama.cpp load), and what to watch for
before calibrating and quantizing it."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.markers import TURN_END, TURN_START
from medcal_gui.core.units import format_bytes
from medcal_gui.gguf_files.gguf_check import model_header
from medcal_gui.quantize.quant_types import quant_type_for_ftype

TOKEN_TYPE_CONTROL = 3  # llama_token_type / gguf TokenType.CONTROL
# Tensor types that are not quantizations (weights stored as floats).
_FLOAT_TENSOR_TYPES = frozenset({"F32", "F16", "BF16", "F64"})


@dataclass
class TurnToken:
    text: str
    id: int | None  # None when the vocabulary has no such entry
    token_type: int | None
    is_control: bool


@dataclass
class ModelInfo:
    path: str
    name: str | None
    architecture: str
    parameter_count: int
    file_type: str  # e.g. "F16", "Q4_K_M"; "unknown" when the file does not say
    file_type_id: int | None  # general.file_type (llama_ftype)
    tensor_count: int
    tensor_types: dict[str, int]  # ggml type name -> number of tensors
    size_bytes: int
    gguf_version: int
    context_length: int | None
    vocab_size: int | None
    tokenizer_model: str | None
    bos_id: int | None
    bos_text: str | None
    eos_id: int | None
    eos_text: str | None
    add_bos: bool | None
    turn_tokens: list[TurnToken]
    turn_tokens_ok: bool  # both turn markers are single control tokens
    has_chat_template: bool
    chat_template_problem: str | None  # why the embedded template cannot be used; None when it can (or none)
    is_quantized: bool
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        """A readable text form, one line per fact, warnings last."""
        types = ", ".join(f"{n} {name}" for name, n in sorted(self.tensor_types.items(), key=lambda kv: -kv[1]))
        turns = ", ".join(
            f"{t.text} = {t.id} ({'control token' if t.is_control else 'NOT a control token'})"
            if t.id is not None else f"{t.text}: not in the vocabulary" for t in self.turn_tokens)
        template = ("none embedded" if not self.has_chat_template else
                    "embedded, BROKEN (see the warning)" if self.chat_template_problem else "embedded, renders")
        lines = [
            f"Model:            {self.path}",
            f"Name:             {self.name or '(not set)'}",
            f"Architecture:     {self.architecture}",
            f"Parameters:       {self.parameter_count:,} ({self.parameter_count / 1e6:.0f}M)",
            f"File type:        {self.file_type}" + (" (quantized)" if self.is_quantized else ""),
            f"Tensors:          {self.tensor_count} ({types})",
            f"Size:             {format_bytes(self.size_bytes)}",
            f"Context length:   {self.context_length if self.context_length is not None else 'unknown'}",
            f"Vocabulary:       {self.vocab_size if self.vocab_size is not None else 'unknown'} tokens"
            + (f" ({self.tokenizer_model})" if self.tokenizer_model else ""),
            f"BOS / EOS:        {self.bos_id} {self.bos_text!r} / {self.eos_id} {self.eos_text!r}",
            f"Turn markers:     {turns}",
            f"Chat template:    {template}",
        ]
        lines += [f"Note: {n}" for n in self.notes]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return lines


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _turn_token(text: str, tokens: list[str] | None, types: list[int] | None) -> TurnToken:
    if not tokens:
        return TurnToken(text, None, None, False)
    try:
        tid = tokens.index(text)
    except ValueError:
        return TurnToken(text, None, None, False)
    ttype = int(types[tid]) if types and tid < len(types) else None
    return TurnToken(text, tid, ttype, ttype == TOKEN_TYPE_CONTROL)


def inspect_model(path: Path | str) -> ModelInfo:
    """Read `path`'s header and report what it is. Raises ModelError (naming the file) when it is unusable."""
    path = Path(path)
    header = model_header(path)
    fields = header.fields

    def _value(key: str) -> Any:
        return fields.get(key)

    arch = str(_value("general.architecture") or "unknown")

    tensor_types = Counter(t.tensor_type.name for t in header.tensors)
    parameter_count = sum(int(t.n_elements) for t in header.tensors)
    # Quantized = some weight matrix is stored in a non-float type (1-D tensors are always float).
    is_quantized = any(t.tensor_type.name not in _FLOAT_TENSOR_TYPES
                       for t in header.tensors if len(t.shape) > 1)

    ftype_id = _int(_value("general.file_type"))
    qt = quant_type_for_ftype(ftype_id) if ftype_id is not None else None
    if qt is not None:
        file_type = qt.name
    elif ftype_id is None and not is_quantized:
        matrix_types = Counter(t.tensor_type.name for t in header.tensors if len(t.shape) > 1)
        file_type = matrix_types.most_common(1)[0][0] if matrix_types else "unknown"
    else:
        file_type = "unknown"

    tokens = _value("tokenizer.ggml.tokens")
    tokens = tokens if isinstance(tokens, list) else None
    token_types = _value("tokenizer.ggml.token_type")
    token_types = token_types if isinstance(token_types, list) else None
    bos_id = _int(_value("tokenizer.ggml.bos_token_id"))
    eos_id = _int(_value("tokenizer.ggml.eos_token_id"))

    def text_of(tid: int | None) -> str | None:
        return tokens[tid] if tokens is not None and tid is not None and 0 <= tid < len(tokens) else None

    turns = [_turn_token(TURN_START, tokens, token_types), _turn_token(TURN_END, tokens, token_types)]
    turns_ok = all(t.is_control for t in turns)
    template = _value("tokenizer.chat_template")
    has_template = isinstance(template, str) and bool(template.strip())
    add_bos = _value("tokenizer.ggml.add_bos_token")

    warnings: list[str] = []
    notes: list[str] = []
    if not turns_ok:
        bad = ", ".join(
            f"{t.text} is not in the vocabulary" if t.id is None
            else f"{t.text} (id {t.id}) has token type {t.token_type}, not control (3)"
            for t in turns if not t.is_control)
        warnings.append(
            f"The Gemma turn markers are not single control tokens in this model ({bad}): the calibration "
            "format would be tokenized as plain text, so the importance matrix would not see the chat "
            "structure. Use a Gemma-family model, or calibrate with plain text.")
    if not arch.startswith("gemma"):
        warnings.append(
            f"This is not a Gemma-family model (architecture {arch}); medcal formats calibration text in "
            "Gemma's chat format.")
    if is_quantized:
        warnings.append(
            f"This model is already quantized ({file_type}). Quantizing it again stacks a second rounding "
            "on the first and loses quality; use the F16 or BF16 original as the input if you have it.")
    from medcal_gui.chat.chat_template import embedded_template_problem

    problem = embedded_template_problem(fields, path.name)
    if problem:
        warnings.append(problem)
    elif has_template:
        notes.append("The model embeds its own chat template.")
    else:
        notes.append("No chat template is embedded (a base model?); medcal supplies Gemma's template.")

    return ModelInfo(
        path=str(path),
        name=_value("general.name") if isinstance(_value("general.name"), str) else None,
        architecture=arch,
        parameter_count=parameter_count,
        file_type=file_type,
        file_type_id=ftype_id,
        tensor_count=len(header.tensors),
        tensor_types=dict(sorted(tensor_types.items())),
        size_bytes=path.stat().st_size,
        gguf_version=header.version,
        context_length=header.context_length,
        vocab_size=len(tokens) if tokens is not None else None,
        tokenizer_model=_value("tokenizer.ggml.model"),
        bos_id=bos_id,
        bos_text=text_of(bos_id),
        eos_id=eos_id,
        eos_text=text_of(eos_id),
        add_bos=bool(add_bos) if add_bos is not None else None,
        turn_tokens=turns,
        turn_tokens_ok=turns_ok,
        has_chat_template=has_template,
        chat_template_problem=problem,
        is_quantized=is_quantized,
        warnings=warnings,
        notes=notes,
    )
