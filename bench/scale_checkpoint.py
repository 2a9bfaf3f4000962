"""A Hugging Face checkpoint with exactly MedGemma-4B-IT's shapes and files, random bf16 weights.

Written once into a cache folder by `bench_scale.py` (never committed): sharded safetensors with an index,
config.json / generation_config.json / preprocessor_config.json / processor_config.json as a real download
has them, and a tokenizer of the full vocabulary (the real Gemma 3 SentencePiece vocabulary, read from the
demo model's GGUF) as tokenizer.model, tokenizer.json and tokenizer_config.json, with Gemma's special and
image tokens. Weights are streamed to disk a slice at a time; memory stays small.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# MedGemma-4B-IT's config.json (google/medgemma-4b-it), as downloaded
CONFIG: dict[str, Any] = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "eos_token_id": [1, 106],
    "image_token_index": 262144,
    "initializer_range": 0.02,
    "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {
        "attention_bias": False, "attention_dropout": 0.0, "attn_logit_softcapping": None,
        "cache_implementation": "hybrid", "final_logit_softcapping": None, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2560, "initializer_range": 0.02,
        "intermediate_size": 10240, "max_position_embeddings": 131072, "model_type": "gemma3_text",
        "num_attention_heads": 8, "num_hidden_layers": 34, "num_key_value_heads": 4,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "rope_theta": 1000000.0,
        "sliding_window": 1024, "sliding_window_pattern": 6, "torch_dtype": "bfloat16", "use_cache": True,
        "vocab_size": 262208,
    },
    "torch_dtype": "bfloat16",
    "transformers_version": "4.50.0.dev0",
    "vision_config": {
        "attention_dropout": 0.0, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 1152, "image_size": 896,
        "intermediate_size": 4304, "layer_norm_eps": 1e-06, "model_type": "siglip_vision_model",
        "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 27, "patch_size": 14,
        "vision_use_head": False,
    },
}
GENERATION_CONFIG = {"bos_token_id": 2, "cache_implementation": "hybrid", "do_sample": True,
                     "eos_token_id": [1, 106], "pad_token_id": 0, "top_k": 64, "top_p": 0.95,
                     "transformers_version": "4.50.0.dev0"}
PREPROCESSOR_CONFIG = {
    "do_convert_rgb": None, "do_normalize": True, "do_pan_and_scan": None, "do_rescale": True,
    "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Gemma3ImageProcessor",
    "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5], "pan_and_scan_max_num_crops": None,
    "pan_and_scan_min_crop_size": None, "pan_and_scan_min_ratio_to_activate": None,
    "processor_class": "Gemma3Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
    "size": {"height": 896, "width": 896},
}
CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
    "messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}"
    "{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}{%- set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first "
    "else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}"
)
SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size ("5GB"): two shards, as the real download
IMAGE_TOKENS = {255999: "<start_of_image>", 256000: "<end_of_image>", 262144: "<image_soft_token>"}


def tensor_shapes(cfg: dict[str, Any] = CONFIG) -> list[tuple[str, tuple[int, ...]]]:
    """Every saved tensor (name, shape), in the key layout of the real download (lm_head tied, not saved)."""
    t, v = cfg["text_config"], cfg["vision_config"]
    h, ff, hd = t["hidden_size"], t["intermediate_size"], t["head_dim"]
    nq, nkv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    out: list[tuple[str, tuple[int, ...]]] = [("language_model.model.embed_tokens.weight", (t["vocab_size"], h))]
    for i in range(t["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (nq, h)), (p + "self_attn.k_proj.weight", (nkv, h)),
                (p + "self_attn.v_proj.weight", (nkv, h)), (p + "self_attn.o_proj.weight", (h, nq)),
                (p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,)),
                (p + "mlp.gate_proj.weight", (ff, h)), (p + "mlp.up_proj.weight", (ff, h)),
                (p + "mlp.down_proj.weight", (h, ff))]
        out += [(p + n + ".weight", (h,)) for n in ("input_layernorm", "post_attention_layernorm",
                                                    "pre_feedforward_layernorm", "post_feedforward_layernorm")]
    out.append(("language_model.model.norm.weight", (h,)))
    vh, vff, n_pos = v["hidden_size"], v["intermediate_size"], (v["image_size"] // v["patch_size"]) ** 2
    vp = "vision_tower.vision_model."
    out += [(vp + "embeddings.patch_embedding.weight", (vh, v["num_channels"], v["patch_size"], v["patch_size"])),
            (vp + "embeddings.patch_embedding.bias", (vh,)),
            (vp + "embeddings.position_embedding.weight", (n_pos, vh))]
    for i in range(v["num_hidden_layers"]):
        p = f"{vp}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(p + f"self_attn.{n}.weight", (vh, vh)), (p + f"self_attn.{n}.bias", (vh,))]
        out += [(p + "mlp.fc1.weight", (vff, vh)), (p + "mlp.fc1.bias", (vff,)),
                (p + "mlp.fc2.weight", (vh, vff)), (p + "mlp.fc2.bias", (vh,))]
        out += [(p + f"{n}.{w}", (vh,)) for n in ("layer_norm1", "layer_norm2") for w in ("weight", "bias")]
    out += [(vp + "post_layernorm.weight", (vh,)), (vp + "post_layernorm.bias", (vh,)),
            ("multi_modal_projector.mm_input_projection_weight", (vh, h)),
            ("multi_modal_projector.mm_soft_emb_norm.weight", (vh,))]
    return out


def weight_bytes(cfg: dict[str, Any] = CONFIG) -> int:
    return sum(2 * math.prod(s) for _, s in tensor_shapes(cfg))


def needed_bytes(cfg: dict[str, Any] = CONFIG) -> int:
    """Disk the checkpoint takes: the weights plus about 80 MB of tokenizer and headers."""
    return weight_bytes(cfg) + 80 * 10**6


_POOL_WORDS = 1 << 24
_pools: dict[tuple[float, float], np.ndarray] = {}


def _pool(mean: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """16M bf16 words of N(mean, std), drawn once: drawing 4.3 billion values would take minutes of CPU on
    a shared 2-core machine; slices of the pool at random offsets are random enough for a stand-in."""
    key = (mean, std)
    if key not in _pools:
        x = rng.standard_normal(_POOL_WORDS, dtype=np.float32) * np.float32(std) + np.float32(mean)
        _pools[key] = ((x.view(np.uint32) + 0x8000) >> 16).astype("<u2")
    return _pools[key]


def _values(name: str, shape: tuple[int, ...], rng: np.random.Generator, chunk: int) -> Iterator[np.ndarray]:
    """bf16 words for the tensor, a slice at a time: weights N(0, 0.02); norms near 0 (Gemma adds 1),
    SigLIP's LayerNorm weights near 1, biases near 0."""
    n = math.prod(shape)
    mean = 1.0 if len(shape) == 1 and ("layer_norm" in name or "post_layernorm" in name) else 0.0
    pool = _pool(mean, 0.02, rng)
    chunk = min(chunk, _POOL_WORDS // 2)
    for a in range(0, n, chunk):
        m = min(chunk, n - a)
        off = int(rng.integers(0, _POOL_WORDS - m + 1))
        yield pool[off: off + m]


def _shards(shapes: list[tuple[str, tuple[int, ...]]]) -> list[list[tuple[str, tuple[int, ...]]]]:
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nb = 2 * math.prod(shape)
        if shards[-1] and size + nb > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nb
    return shards


def _write_shard(path: Path, entries: list[tuple[str, tuple[int, ...]]], rng: np.random.Generator) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape in sorted(entries):
        nb = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in sorted(entries):
            for words in _values(name, shape, rng, 1 << 23):
                fh.write(words.tobytes())
    os.replace(tmp, path)


# ---------------------------------------------------------------- tokenizer

def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_piece(piece: bytes, score: float, ptype: int) -> bytes:
    body = b"\x0a" + _pb_varint(len(piece)) + piece + b"\x15" + struct.pack("<f", score)
    if ptype != 1:
        body += b"\x18" + _pb_varint(ptype)
    return b"\x0a" + _pb_varint(len(body)) + body


def _gemma_vocab(demo_gguf: Path) -> tuple[list[str], list[float], list[int]]:
    import gguf

    r = gguf.GGUFReader(str(demo_gguf))
    return (list(r.fields["tokenizer.ggml.tokens"].contents()), list(r.fields["tokenizer.ggml.scores"].contents()),
            list(r.fields["tokenizer.ggml.token_type"].contents()))


def write_tokenizer(hf_dir: Path, demo_gguf: Path) -> None:
    """tokenizer.model (262,144 SentencePiece pieces), tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, added_tokens.json and chat_template.json, with Gemma 3's ids."""
    tokens, scores, types = _gemma_vocab(demo_gguf)
    sp_types = list(types)
    sp_types[3] = 2  # <unk> is UNKNOWN in the SentencePiece model
    for i in IMAGE_TOKENS:
        if i < len(sp_types):
            sp_types[i] = 4
    # trainer_spec (field 2) with model_type BPE (2) and byte_fallback, normalizer_spec (field 3) identity
    trainer = b"\x18\x02" + b"\x98\x02\x01"  # model_type=BPE, byte_fallback=true (field 35)
    normalizer = b"\x0a\x08identity" + b"\x18\x00"  # name, add_dummy_prefix=false
    with open(hf_dir / "tokenizer.model", "wb") as fh:
        for t, s, ty in zip(tokens, scores, sp_types, strict=True):
            fh.write(_pb_piece(t.encode("utf-8"), float(s), int(ty)))
        fh.write(b"\x12" + _pb_varint(len(trainer)) + trainer)
        fh.write(b"\x1a" + _pb_varint(len(normalizer)) + normalizer)

    specials = {0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 4: "<mask>", 105: "<start_of_turn>",
                106: "<end_of_turn>"}
    decoder: dict[str, Any] = {}
    ids = [i for i, ty in enumerate(types) if ty in (3, 4)] + [262144]
    for i in sorted(set(ids)):
        text = tokens[i] if i < len(tokens) else IMAGE_TOKENS[i]
        decoder[str(i)] = {"content": text, "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": i in specials or i in IMAGE_TOKENS}
    tconf = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder,
             "additional_special_tokens": ["<start_of_image>"], "boi_token": "<start_of_image>",
             "bos_token": "<bos>", "clean_up_tokenization_spaces": False, "eoi_token": "<end_of_image>",
             "eos_token": "<eos>", "extra_special_tokens": {"boi_token": "<start_of_image>",
                                                             "eoi_token": "<end_of_image>",
                                                             "image_token": "<image_soft_token>"},
             "image_token": "<image_soft_token>", "model_max_length": 1000000000000000019884624838656,
             "pad_token": "<pad>", "padding_side": "left", "processor_class": "Gemma3Processor",
             "sp_model_kwargs": None, "spaces_between_special_tokens": False,
             "tokenizer_class": "GemmaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False}
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tconf, indent=2), encoding="utf-8")
    stmap = {"boi_token": "<start_of_image>", "bos_token": {"content": "<bos>"}, "eoi_token": "<end_of_image>",
             "eos_token": {"content": "<eos>"}, "image_token": "<image_soft_token>",
             "pad_token": {"content": "<pad>"}, "unk_token": {"content": "<unk>"}}
    (hf_dir / "special_tokens_map.json").write_text(json.dumps(stmap, indent=2), encoding="utf-8")
    (hf_dir / "added_tokens.json").write_text(json.dumps({"<image_soft_token>": 262144}), encoding="utf-8")
    (hf_dir / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    added = [{"id": int(k), "content": v["content"], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": v["special"]} for k, v in decoder.items()]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
          "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                            "invert": False},
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<bos>", "type_id": 1}},
                                      {"Sequence": {"id": "B", "type_id": 1}}],
                             "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
          "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"},
                                                        "content": " "}, {"type": "ByteFallback"},
                                                       {"type": "Fuse"}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                    "ignore_merges": False, "vocab": {t: i for i, t in enumerate(tokens)}, "merges": []}}
    (hf_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")


def write_checkpoint(hf_dir: Path, demo_gguf: Path, seed: int = 0, log: Any = print) -> Path:
    """Write the full checkpoint into `hf_dir` (skipped when complete); returns the folder."""
    done = hf_dir / ".complete"
    if done.is_file():
        return hf_dir
    hf_dir.mkdir(parents=True, exist_ok=True)
    need = needed_bytes()
    free = shutil.disk_usage(hf_dir).free
    if free < need * 1.05:
        raise SystemExit(f"the checkpoint needs {need / 1e9:.1f} GB in {hf_dir}; {free / 1e9:.1f} GB are free")
    log(f"writing a MedGemma-4B-shaped checkpoint ({need / 1e9:.2f} GB) into {hf_dir}")
    rng = np.random.default_rng(seed)
    shapes = tensor_shapes()
    shards = _shards(shapes)
    weight_map: dict[str, str] = {}
    for k, entries in enumerate(shards, start=1):
        name = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        _write_shard(hf_dir / name, entries, rng)
        weight_map.update({n: name for n, _ in entries})
        log(f"  {name}: {len(entries)} tensors")
    index = {"metadata": {"total_size": weight_bytes()}, "weight_map": dict(sorted(weight_map.items()))}
    (hf_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (hf_dir / "config.json").write_text(json.dumps(CONFIG, indent=2), encoding="utf-8")
    (hf_dir / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2), encoding="utf-8")
    (hf_dir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2), encoding="utf-8")
    (hf_dir / "processor_config.json").write_text(json.dumps({"image_seq_length": 256,
                                                              "processor_class": "Gemma3Processor"}),
                                                  encoding="utf-8")
    write_tokenizer(hf_dir, demo_gguf)
    done.write_text("ok\n")
    return hf_dir
