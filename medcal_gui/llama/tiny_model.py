"""A tiny but real Gemma-3 GGUF with random weights, for tests and benchmarks that need llama.cpp to run.

The architecture, metadata keys and tensor names are those of the real Gemma 3 270M GGUF; the sizes are
small, with every matmul row length a multiple of 256 so that k-quants and i-quants can quantize it. The
vocabulary is a small SentencePiece-style ("llama" tokenizer model) one with Gemma's special ids, the two
turn markers as control tokens, 256 byte-fallback tokens and a few hundred English/clinical pieces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medcal_gui.core.fsutil import atomic_path
from medcal_gui.core.markers import TURN_END, TURN_START

SPACE = "\u2581"  # SentencePiece's visible space

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

# Words the vocabulary spells whole (with all their prefixes, so SentencePiece merges can reach them).
_WORDS = (
    "the and of to in a is was with for on at by patient history pain chest blood pressure heart rate "
    "mg daily dose left right normal acute chronic disease diagnosis treatment medication symptoms exam "
    "cardiac atrial fibrillation hypertension diabetes user model no not he she his her they are be has "
    "had were this that from as an or"
).split()
_BIGRAMS = ("th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve "
            "co").split()
_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", TURN_START, TURN_END]
# gguf token types: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6
_TYPE_NORMAL, _TYPE_UNKNOWN, _TYPE_CONTROL, _TYPE_USER_DEFINED, _TYPE_BYTE = 1, 2, 3, 4, 6


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, types): ids 0-3 pad/eos/bos/unk, 4-5 turn markers, 6-261 bytes, then pieces."""
    tokens = list(_SPECIALS)
    types = [_TYPE_CONTROL, _TYPE_CONTROL, _TYPE_CONTROL, _TYPE_UNKNOWN, _TYPE_CONTROL, _TYPE_CONTROL]
    scores = [-1000.0] * len(tokens)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(_TYPE_BYTE)
        scores.append(0.0)
    pieces: list[str] = ["\n", SPACE]
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?-()/'%"
    pieces += list(chars)
    pieces += [SPACE + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces += _BIGRAMS
    for w in _WORDS:
        full = SPACE + w
        pieces += [full[:i] for i in range(2, len(full) + 1)]
        pieces += [w[:i] for i in range(2, len(w) + 1)]
    seen = set(tokens)
    score = -1.0
    for p in pieces:
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(_TYPE_USER_DEFINED if p == "\n" else _TYPE_NORMAL)
        # longer pieces win merges (SentencePiece picks the highest-scoring adjacent pair)
        scores.append(score + 0.5 * len(p))
        score -= 0.01
    return tokens, scores, types


def write_tiny_gemma3(path: Path, *, seed: int = 0, n_layer: int = 2, n_embd: int = 256, n_ff: int = 512,
                      n_head: int = 2, n_head_kv: int = 1, head_dim: int = 128, n_ctx: int = 2048,
                      sliding_window: int = 512, chat_template: bool = True) -> Path:
    """Write a random-weight Gemma-3 GGUF (all F32) to `path` atomically and return `path`.

    Defaults give ~1.2 M parameters: 2 layers, n_embd 256, n_ff 512, two query heads of 128 and one KV head,
    so every matmul row length is a multiple of 256 (Q4_K_M, IQ3_XXS and Q8_0 all apply).
    """
    import gguf

    for name, v in (("n_embd", n_embd), ("n_ff", n_ff), ("n_head*head_dim", n_head * head_dim)):
        if v % 256:
            raise ValueError(f"{name} = {v} must be a multiple of 256 for k-quants")
    rng = np.random.default_rng(seed)
    tokens, scores, types = tiny_vocab()
    n_vocab = len(tokens)

    def w(rows: int, cols: int, std: float = 0.02) -> np.ndarray:
        # numpy shape (rows, cols) is ggml ne (cols, rows): cols is the row length that gets quantized
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        # Gemma's GGUF norms are stored as (1 + w); ~1 keeps activations at a sane scale
        return (1.0 + 0.01 * rng.standard_normal(n)).astype(np.float32)

    path = Path(path)
    with atomic_path(path) as tmp:
        wr = gguf.GGUFWriter(str(tmp), "gemma3")
        wr.add_type("model")
        wr.add_name("medcal tiny gemma3 (random weights)")
        wr.add_context_length(n_ctx)
        wr.add_embedding_length(n_embd)
        wr.add_block_count(n_layer)
        wr.add_feed_forward_length(n_ff)
        wr.add_head_count(n_head)
        wr.add_head_count_kv(n_head_kv)
        wr.add_key_length(head_dim)
        wr.add_value_length(head_dim)
        wr.add_layer_norm_rms_eps(1e-6)
        wr.add_rope_freq_base(1_000_000.0)
        wr.add_sliding_window(sliding_window)
        wr.add_file_type(gguf.LlamaFileType.ALL_F32)
        wr.add_tokenizer_model("llama")
        wr.add_tokenizer_pre("default")
        wr.add_token_list(tokens)
        wr.add_token_scores(scores)
        wr.add_token_types(types)
        wr.add_bos_token_id(2)
        wr.add_eos_token_id(1)
        wr.add_unk_token_id(3)
        wr.add_pad_token_id(0)
        wr.add_add_bos_token(True)
        wr.add_add_eos_token(False)
        wr.add_add_space_prefix(False)
        if chat_template:
            wr.add_chat_template(GEMMA_CHAT_TEMPLATE)

        wr.add_tensor("token_embd.weight", w(n_vocab, n_embd, 0.05))
        wr.add_tensor("output_norm.weight", ones(n_embd))
        q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
        for i in range(n_layer):
            p = f"blk.{i}."
            wr.add_tensor(p + "attn_norm.weight", ones(n_embd))
            wr.add_tensor(p + "attn_q.weight", w(q_dim, n_embd))
            wr.add_tensor(p + "attn_k.weight", w(kv_dim, n_embd))
            wr.add_tensor(p + "attn_v.weight", w(kv_dim, n_embd))
            wr.add_tensor(p + "attn_q_norm.weight", ones(head_dim))
            wr.add_tensor(p + "attn_k_norm.weight", ones(head_dim))
            wr.add_tensor(p + "attn_output.weight", w(n_embd, q_dim))
            wr.add_tensor(p + "post_attention_norm.weight", ones(n_embd))
            wr.add_tensor(p + "ffn_norm.weight", ones(n_embd))
            wr.add_tensor(p + "ffn_gate.weight", w(n_ff, n_embd))
            wr.add_tensor(p + "ffn_up.weight", w(n_ff, n_embd))
            wr.add_tensor(p + "ffn_down.weight", w(n_embd, n_ff))
            wr.add_tensor(p + "post_ffw_norm.weight", ones(n_embd))
        wr.write_header_to_file()
        wr.write_kv_data_to_file()
        wr.write_tensors_to_file()
        wr.close()
    return path
