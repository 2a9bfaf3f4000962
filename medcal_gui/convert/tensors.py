"""Which Hugging Face tensors become which GGUF tensors, how their numbers change, and the streaming writer.

The changes are those of llama.cpp's converter for Gemma 3:
- every `*norm.weight` gets +1: Gemma's RMSNorm multiplies by (1 + w), llama.cpp's by w. The addition is done
  in float32, except for a float16 checkpoint, where llama.cpp's converter adds in float16 (kept here);
- the token embedding keeps only as many rows as the vocabulary has entries;
- 1-D tensors and `*_norm.weight` stay F32, every other tensor takes the output type (f16/bf16/f32), rounded
  to nearest even as gguf's quantize does;
- no `output.weight` when the embeddings are tied: llama.cpp reuses token_embd. The embedding scale
  sqrt(hidden_size) is llama.cpp's own doing, so the weights are not scaled.

The writer puts the header, metadata and tensor table down through gguf's GGUFWriter, then appends each
tensor a slice of rows at a time, hashing the file as it goes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf import quants as gguf_quants

from medcal_gui.convert.config import Gemma3Spec, UnsupportedModelError
from medcal_gui.convert.output_stream import HashingWriter, write_error
from medcal_gui.convert.safetensors_io import (
    SafetensorsCheckpoint,
    ShardError,
    TensorEntry,
    check_dtype,
    prefetch,
    read_raw,
    row_slices,
    widen,
)
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter
from medcal_gui.llama.row_convert import bf16_to_f16, f32_to_f16

F32 = GGMLQuantizationType.F32
_TYPE_SIZE = {GGMLQuantizationType.F32: 4, GGMLQuantizationType.F16: 2, GGMLQuantizationType.BF16: 2}

# Hugging Face Gemma 3 decoder-layer tensor -> GGUF name (llama.cpp's tensor map for gemma3)
LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
# where the language model lives, by checkpoint layout (transformers version)
LM_PREFIXES = ("model.", "language_model.model.", "model.language_model.")
LM_HEADS = ("lm_head.weight", "language_model.lm_head.weight")
# tensors of a Gemma3ForConditionalGeneration that are not the language model
VISION_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass
class TensorPlan:
    name: str  # GGUF name
    entry: TensorEntry
    out_type: GGMLQuantizationType
    shape: tuple[int, ...]  # numpy order, after row truncation and transform
    add_one: bool = False
    rows: int | None = None  # keep only the first `rows` rows
    transform: Transform | None = None  # applied to a whole tensor (small vision tensors only)

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.n_elements * _TYPE_SIZE[self.out_type]


def out_type_for(gguf_name: str, n_dims: int, default: GGMLQuantizationType) -> GGMLQuantizationType:
    """llama.cpp's rule: 1-D tensors and norms are F32, the rest take the output type."""
    if n_dims <= 1 or gguf_name.endswith("_norm.weight"):
        return F32
    return default


def _find_prefix(ckpt: SafetensorsCheckpoint) -> str:
    for p in LM_PREFIXES:
        if p + "embed_tokens.weight" in ckpt:
            return p
    raise ShardError(f"The weights in {ckpt.hf_dir} hold no token embedding (model.embed_tokens.weight or "
                     "language_model.model.embed_tokens.weight): the download is incomplete or this is not a "
                     "Gemma 3 checkpoint.")


def plan_language_model(spec: Gemma3Spec, ckpt: SafetensorsCheckpoint, n_vocab: int,
                        out_type: GGMLQuantizationType) -> list[TensorPlan]:
    """Every GGUF tensor of the language model, checked against config.json, in GGUF order."""
    t = spec.text
    n_embd, n_ff, n_layer = int(t["hidden_size"]), int(t["intermediate_size"]), int(t["num_hidden_layers"])
    hd, n_head, n_kv = int(t["head_dim"]), int(t["num_attention_heads"]), int(t["num_key_value_heads"])
    prefix = _find_prefix(ckpt)
    expected: dict[str, tuple[int, ...]] = {
        "input_layernorm.weight": (n_embd,),
        "self_attn.q_proj.weight": (n_head * hd, n_embd),
        "self_attn.k_proj.weight": (n_kv * hd, n_embd),
        "self_attn.v_proj.weight": (n_kv * hd, n_embd),
        "self_attn.o_proj.weight": (n_embd, n_head * hd),
        "self_attn.q_norm.weight": (hd,),
        "self_attn.k_norm.weight": (hd,),
        "post_attention_layernorm.weight": (n_embd,),
        "pre_feedforward_layernorm.weight": (n_embd,),
        "post_feedforward_layernorm.weight": (n_embd,),
        "mlp.gate_proj.weight": (n_ff, n_embd),
        "mlp.up_proj.weight": (n_ff, n_embd),
        "mlp.down_proj.weight": (n_embd, n_ff),
    }
    used: set[str] = set()

    def get(hf_name: str, shape: tuple[int, ...] | None) -> TensorEntry:
        if hf_name not in ckpt:
            raise ShardError(f"The weights in {ckpt.hf_dir} lack the tensor {hf_name!r}: the download is "
                             "incomplete, or config.json does not belong to these weights.")
        e = ckpt.entries[hf_name]
        check_dtype(e)
        if shape is not None and e.shape != shape:
            raise UnsupportedModelError(f"The tensor {hf_name!r} has shape {list(e.shape)}, but config.json implies "
                                        f"{list(shape)}: config.json does not match the weights.")
        used.add(hf_name)
        return e

    def plan(gguf_name: str, e: TensorEntry, rows: int | None = None) -> TensorPlan:
        shape = ((rows,) + e.shape[1:]) if rows is not None else e.shape
        return TensorPlan(gguf_name, e, out_type_for(gguf_name, len(shape), out_type), shape,
                          add_one=gguf_name.endswith("norm.weight"), rows=rows)

    emb = get(prefix + "embed_tokens.weight", None)
    if len(emb.shape) != 2 or emb.shape[1] != n_embd:
        raise UnsupportedModelError(f"The token embedding has shape {list(emb.shape)}, but config.json says "
                                    f"hidden_size {n_embd}: config.json does not match the weights.")
    if emb.shape[0] < n_vocab:
        raise UnsupportedModelError(f"The token embedding has {emb.shape[0]} rows but the vocabulary {n_vocab} "
                                    "tokens: config.json's vocab_size or the tokenizer does not match the weights.")
    plans = [plan("token_embd.weight", emb, rows=n_vocab)]
    for i in range(n_layer):
        for hf, gg in LAYER_MAP.items():
            plans.append(plan(f"blk.{i}.{gg}", get(f"{prefix}layers.{i}.{hf}", expected[hf])))
    plans.append(plan("output_norm.weight", get(prefix + "norm.weight", (n_embd,))))
    head = next((h for h in LM_HEADS if h in ckpt), None)
    if head is not None:
        used.add(head)
        if not spec.text.get("tie_word_embeddings", True):
            e = get(head, None)
            if e.shape[1:] != (n_embd,) or e.shape[0] < n_vocab:
                raise UnsupportedModelError(f"The output head {head!r} has shape {list(e.shape)}, which does not "
                                            "fit the embedding.")
            plans.append(plan("output.weight", e, rows=n_vocab))
    elif not spec.text.get("tie_word_embeddings", True):
        raise ShardError(f"config.json says the output head is not tied to the embedding, but the weights in "
                         f"{ckpt.hf_dir} hold no lm_head.weight: the download is incomplete.")
    stray = [n for n in ckpt.names() if n not in used and not n.startswith(VISION_PREFIXES)]
    if stray:
        raise UnsupportedModelError(f"The weights hold {len(stray)} tensors a Gemma 3 language model does not have "
                                    f"(first: {stray[0]!r}); llama.cpp could not use them. Is this a Gemma 3 "
                                    "checkpoint, or a fine-tune with extra parts (LoRA adapters must be merged "
                                    "first)?")
    return plans


def in_file_order(plans: list[TensorPlan], ckpt: SafetensorsCheckpoint) -> list[TensorPlan]:
    """The plans in the order their bytes lie in the shards (shard by shard, front to back), so that a
    conversion reads each shard from the disk as one sequential stream, as a plain copy does. Read blk by blk,
    the tensors of a download lie scattered (`layers.1` is followed by `layers.10` in the file), and the disk
    read a few tensors and then jumped. For a download whose tensors share one dtype this is also the order
    llama.cpp's converter writes them in (shard by shard, names sorted: safetensors stores them sorted)."""
    shard_no = {s: i for i, s in enumerate(ckpt.shards)}
    return sorted(plans, key=lambda p: (shard_no[p.entry.shard], p.entry.start))


def _chunk_values(p: TensorPlan, r0: int, r1: int) -> np.ndarray:
    raw = read_raw(p.entry, r0, r1)
    if p.add_one and p.entry.dtype == "F16":
        # llama.cpp's converter keeps float16 tensors in float16 while it adds the 1
        return (raw + np.float16(1.0)).astype(np.float32)
    vals = widen(raw, p.entry.dtype)
    if p.add_one:
        vals = vals + np.float32(1.0)
    return vals


def _slice_bytes(p: TensorPlan, r0: int, r1: int) -> bytes | memoryview:
    """Rows [r0, r1) of a plan's tensor in its output type."""
    if p.out_type == GGMLQuantizationType.F16 and p.entry.dtype == "BF16" and not p.add_one:
        # a bf16 download's matrices: most of a conversion's bytes, cast without a float32 copy of the slice
        return _as_bytes(bf16_to_f16(read_raw(p.entry, r0, r1)))
    return _encode(_chunk_values(p, r0, r1), p.out_type)


def _as_bytes(arr: np.ndarray) -> memoryview:
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data


def _encode(vals: np.ndarray, qtype: GGMLQuantizationType) -> bytes | memoryview:
    if qtype == GGMLQuantizationType.F16:  # most of a conversion's time: the fast cast, same bits
        out = f32_to_f16(vals)
    else:
        out = gguf_quants.quantize(np.ascontiguousarray(vals, dtype=np.float32), qtype)
    return _as_bytes(out)


def write_gguf(path: Path, writer: GGUFWriter, plans: list[TensorPlan], *, stage: str,
               progress: ProgressCallback, cancel: CancelToken) -> str:
    """Write `writer`'s metadata and the planned tensors to `path`; returns the file's sha256.

    `writer` holds the metadata (key/values) already; the tensor table is added here.
    """
    for p in plans:
        writer.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.out_type)
    try:  # a full disk or a lost drive, in the header, on the writer thread or at the end: said in words
        digest = _write_data(Path(path), writer, plans, stage=stage, progress=progress, cancel=cancel)
    except OSError as exc:
        raise write_error(Path(path), exc) from exc
    progress(Progress(stage, len(plans), len(plans), unit="tensors", message="done"))
    return digest


def _write_data(path: Path, writer: GGUFWriter, plans: list[TensorPlan], *, stage: str,
                progress: ProgressCallback, cancel: CancelToken) -> str:
    """The header, then each planned tensor a slice of rows at a time; the file's sha256."""
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    align = writer.data_alignment
    meter = RateMeter()
    with open(path, "r+b") as fh:
        head = fh.read()
        sink = HashingWriter(fh, head)
        try:
            for i, p in enumerate(plans):
                cancel.check()
                if i + 1 < len(plans):
                    prefetch(plans[i + 1].entry)
                sink.pad(align)
                progress(Progress(stage, i, len(plans), unit="tensors", message=p.name,
                                  rate=meter.rate(i), rate_unit="tensors", eta_s=meter.eta(i, len(plans))))
                written = 0
                if p.transform is not None:
                    vals = p.transform(_chunk_values(p, 0, p.entry.shape[0] if p.entry.shape else 1))
                    if tuple(vals.shape) != p.shape:
                        raise AssertionError(f"{p.name}: planned {p.shape}, got {vals.shape}")
                    written += sink.put(_encode(vals, p.out_type))
                else:
                    rows = p.shape[0] if p.shape else 1
                    for r0, r1 in row_slices(p.entry):
                        if r0 >= rows:
                            break
                        cancel.check()
                        written += sink.put(_slice_bytes(p, r0, min(r1, rows)))
                if written != p.nbytes:
                    raise AssertionError(f"{p.name}: wrote {written} bytes, planned {p.nbytes}")
            sink.pad(align)
            digest = sink.finish()
        finally:
            sink.stop()
        fh.flush()
    return digest
