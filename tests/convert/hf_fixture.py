"""Tiny random Gemma 3 checkpoints saved by transformers' own `save_pretrained`, for the converter's tests.

Needs the dev extra (torch, transformers, sentencepiece); `missing_reason()` says what is missing so tests can
skip with a clear reason. The tokenizer is a small SentencePiece BPE model trained at test time on the sample
narratives, laid out like Gemma's (pad/eos/bos/unk = 0/1/2/3, the turn markers as user-defined pieces, byte
fallback, no dummy prefix) and saved through GemmaTokenizer, so the folder has the real file names.
"""

from __future__ import annotations

import importlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
TEXT = dict(hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
            query_pre_attn_scalar=32, sliding_window=8, max_position_embeddings=512, rms_norm_eps=1e-6)


def missing_reason(modules: tuple[str, ...] = ("torch", "transformers", "sentencepiece")) -> str | None:
    for mod in modules:
        try:
            importlib.import_module(mod)
        except Exception as exc:  # an ImportError, or a broken install
            return (f"{mod} cannot be imported ({type(exc).__name__}: {exc}); pip install -e '.[dev]' brings "
                    "torch, transformers and sentencepiece")
    return None


def train_sentencepiece(vocab_size: int = 600, symbols: tuple[str, ...] = ("<start_of_turn>", "<end_of_turn>")
                        ) -> bytes:
    import sentencepiece as spm

    lines = [ln for f in sorted(SAMPLES.glob("*.txt")) for ln in f.read_text(encoding="utf-8").splitlines()
             if ln.strip()]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=list(symbols), byte_fallback=True, split_digits=True,
        add_dummy_prefix=False, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    return buf.getvalue()


def save_tokenizer(hf_dir: Path, sp_model: bytes, chat_template: str | None = GEMMA_TEMPLATE,
                   turn_tokens: bool = True) -> Any:
    from transformers import GemmaTokenizer

    hf_dir.mkdir(parents=True, exist_ok=True)
    src = hf_dir / "_sp_src.model"
    src.write_bytes(sp_model)
    extra = ["<start_of_turn>", "<end_of_turn>"] if turn_tokens else []
    tok = GemmaTokenizer(vocab_file=str(src), additional_special_tokens=extra)
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(str(hf_dir))
    src.unlink()
    return tok


def _randomize(model: Any, seed: int) -> None:
    """Weights far from init so that mistakes (a missing +1, a wrong scale) show in the logits."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / p.shape[-1] ** 0.5))


def make_causal(hf_dir: Path, sp_model: bytes, *, n_layer: int = 6, seed: int = 0, dtype: str = "float32",
                shard_size: str | None = None, **over: Any) -> Path:
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = save_tokenizer(hf_dir, sp_model)
    cfg = Gemma3TextConfig(vocab_size=len(tok), num_hidden_layers=n_layer, **{**TEXT, **over})
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(cfg).eval()
    _randomize(model, seed)
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(str(hf_dir), **({"max_shard_size": shard_size} if shard_size else {}))
    return hf_dir


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: an 8-byte header length, the JSON header, then each tensor's bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, arr in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for arr in tensors.values():
            fh.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def text_shapes(n_vocab: int, h: int, ff: int, hd: int, nq: int, nkv: int,
                n_layer: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of a Gemma 3 text model of these sizes, by its Hugging Face name."""
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (n_vocab, h), "model.norm.weight": (h,)}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        shapes |= {p + "self_attn.q_proj.weight": (nq, h), p + "self_attn.k_proj.weight": (nkv, h),
                   p + "self_attn.v_proj.weight": (nkv, h), p + "self_attn.o_proj.weight": (h, nq),
                   p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
                   p + "mlp.gate_proj.weight": (ff, h), p + "mlp.up_proj.weight": (ff, h),
                   p + "mlp.down_proj.weight": (h, ff)}
        shapes |= {p + n + ".weight": (h,) for n in ("input_layernorm", "post_attention_layernorm",
                                                     "pre_feedforward_layernorm", "post_feedforward_layernorm")}
    return shapes


def make_plain_causal(hf_dir: Path, sp_model: bytes, *, n_layer: int = 2, seed: int = 0) -> Path:
    """A Gemma3ForCausalLM folder written without torch or transformers (config.json, tokenizer.model,
    tokenizer_config.json, model.safetensors in save_pretrained's key layout): for tests that only need a
    folder to convert, in a process that should not load torch (the GUI tests)."""
    from medcal_gui.convert.vocab import parse_sentencepiece

    hf_dir.mkdir(parents=True, exist_ok=True)
    (hf_dir / "tokenizer.model").write_bytes(sp_model)
    n_vocab = len(parse_sentencepiece(sp_model))
    special = {i: p.decode() for i, (p, _s, t) in enumerate(parse_sentencepiece(sp_model)) if t in (2, 3, 4)}
    decoder = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for i, c in special.items()}
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder, "bos_token": "<bos>",
        "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "chat_template": GEMMA_TEMPLATE,
        "tokenizer_class": "GemmaTokenizer"}, indent=2), encoding="utf-8")
    h, ff, hd = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["head_dim"]
    nq, nkv = TEXT["num_attention_heads"] * hd, TEXT["num_key_value_heads"] * hd
    (hf_dir / "config.json").write_text(json.dumps({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": n_vocab,
        "num_hidden_layers": n_layer, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "torch_dtype": "float32", **TEXT}, indent=2), encoding="utf-8")
    rng = np.random.default_rng(seed)
    shapes = text_shapes(n_vocab, h, ff, hd, nq, nkv, n_layer)
    _write_safetensors(hf_dir / "model.safetensors", {
        n: rng.standard_normal(s, dtype=np.float32) * np.float32(0.5 if len(s) == 1 else 1 / s[-1] ** 0.5)
        for n, s in sorted(shapes.items())})
    return hf_dir


def make_conditional(hf_dir: Path, sp_model: bytes, *, n_layer: int = 6, seed: int = 1,
                     rope_scaling: dict[str, Any] | None = None) -> Path:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    tok = save_tokenizer(hf_dir, sp_model)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=32, patch_size=8)
    text = {**TEXT, "vocab_size": len(tok), "num_hidden_layers": n_layer,
            "rope_scaling": rope_scaling or {"rope_type": "linear", "factor": 8.0}}
    cfg = Gemma3Config(text_config=text, vision_config=vision.to_dict(), mm_tokens_per_image=4,
                       boi_token_index=4, eoi_token_index=5, image_token_index=5)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    _randomize(model, seed)
    model.save_pretrained(str(hf_dir))
    (hf_dir / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_seq_length": 4, '
        '"size": {"height": 32, "width": 32}}', encoding="utf-8")
    return hf_dir


def hf_tokenize(hf_dir: Path, text: str) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir), use_fast=False)
    return list(tok(text).input_ids)


def _ggml_gelu_module() -> Any:
    """GELU as llama.cpp's CPU backend computes it: a table indexed by the input rounded to float16.

    Its rounding (about 5e-4 relative) is llama.cpp's, not the converter's; modelling it in the reference
    lets the comparison be tight enough to catch converter mistakes.
    """
    import torch
    import torch.nn.functional as F

    class GgmlGelu(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            y = F.gelu(x.to(torch.float16).float(), approximate="tanh").to(torch.float16).float()
            return torch.where(x <= -10, torch.zeros_like(x), torch.where(x >= 10, x, y))

    return GgmlGelu()


def hf_logits(hf_dir: Path, ids: list[int], ggml_gelu: bool = True) -> np.ndarray:
    """float32 logits of every position, computed by transformers on the saved folder."""
    import torch
    from transformers import AutoConfig, Gemma3ForCausalLM, Gemma3ForConditionalGeneration

    cfg = AutoConfig.from_pretrained(str(hf_dir))
    cls = Gemma3ForConditionalGeneration if cfg.model_type == "gemma3" else Gemma3ForCausalLM
    model = cls.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager").eval()
    if ggml_gelu:
        for mod in model.modules():
            if hasattr(mod, "act_fn") and hasattr(mod, "gate_proj"):
                mod.act_fn = _ggml_gelu_module()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]))
    return out.logits[0].float().numpy()


# ---------------------------------------------------------------- a folder laid out like a real MedGemma download

IMAGE_TOKENS = ("<start_of_image>", "<end_of_image>")
IMAGE_SOFT = "<image_soft_token>"
GENERATION = {"bos_token_id": 2, "do_sample": True, "eos_token_id": [1, 5], "pad_token_id": 0, "top_k": 64,
              "top_p": 0.95}


def make_real_folder(hf_dir: Path, *, vocab_pad: int = 8, seed: int = 2) -> Path:
    """A tiny Gemma3ForConditionalGeneration with the files a real MedGemma 4B download has: tokenizer.model
    and tokenizer.json, the image tokens (<start_of_image>, <end_of_image> in the SentencePiece model, and
    <image_soft_token> added after it), the chat template in chat_template.jinja only, generation_config.json
    with a list of end ids, preprocessor_config.json with its own mean and std, a vocab_size above the
    tokenizer's (rows llama.cpp pads with [PAD<id>])."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    hf_dir.mkdir(parents=True, exist_ok=True)
    sp = train_sentencepiece(symbols=("<start_of_turn>", "<end_of_turn>", *IMAGE_TOKENS))
    tok = save_tokenizer(hf_dir, sp)
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>", *IMAGE_TOKENS,
                                                         IMAGE_SOFT]})
    tok.save_pretrained(str(hf_dir))
    write_tokenizer_json(hf_dir, tok)
    soft_id = tok.convert_tokens_to_ids(IMAGE_SOFT)
    boi, eoi = tok.convert_tokens_to_ids(list(IMAGE_TOKENS))
    # transformers >= 4.43 writes the template to chat_template.jinja; make sure it is only there
    tconf_path = hf_dir / "tokenizer_config.json"
    tconf = json.loads(tconf_path.read_text(encoding="utf-8"))
    tconf.pop("chat_template", None)
    tconf_path.write_text(json.dumps(tconf, indent=2), encoding="utf-8")
    (hf_dir / "chat_template.jinja").write_text(GEMMA_TEMPLATE, encoding="utf-8")
    (hf_dir / "chat_template.json").unlink(missing_ok=True)

    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=32, patch_size=8)
    text = {**TEXT, "vocab_size": soft_id + 1 + vocab_pad, "num_hidden_layers": 6,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0}}
    cfg = Gemma3Config(text_config=text, vision_config=vision.to_dict(), mm_tokens_per_image=4,
                       boi_token_index=boi, eoi_token_index=eoi, image_token_index=soft_id, eos_token_id=[1, 5])
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    _randomize(model, seed)
    model.save_pretrained(str(hf_dir))
    (hf_dir / "generation_config.json").write_text(json.dumps(GENERATION, indent=2), encoding="utf-8")
    (hf_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_seq_length": 4, "size": {"height": 32, "width": 32},
        "image_processor_type": "Gemma3ImageProcessor", "processor_class": "Gemma3Processor"}), encoding="utf-8")
    return hf_dir


def write_tokenizer_json(hf_dir: Path, slow: Any) -> None:
    """tokenizer.json as transformers' GemmaConverter lays it out (BPE with byte fallback, the SentencePiece
    model's merges, Gemma's normalizer, pre-tokenizer, decoder and <bos> post-processor), built with the
    tokenizers library directly: the converter itself needs protobuf, which is not a dependency here."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    vocab, merges = SentencePieceExtractor(str(hf_dir / "tokenizer.model")).extract()
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    t.normalizer = normalizers.Replace(" ", "\u2581")
    t.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    t.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    t.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                     special_tokens=[("<bos>", 2)])
    added = sorted(slow.added_tokens_decoder.items())
    t.add_special_tokens([AddedToken(a.content, special=True, normalized=False) for _, a in added if a.special])
    t.add_tokens([AddedToken(a.content, special=False, normalized=False) for _, a in added if not a.special])
    t.save(str(hf_dir / "tokenizer.json"))


def sdist_converter() -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py from the pinned llama-cpp-python sdist, when unpacked here."""
    import os

    roots = [os.environ.get("MEDCAL_LLAMA_SDIST"), "/work/cache/sdist/llama_cpp_python-0.3.36",
             str(Path(__file__).resolve().parents[2] / ".venv" / "sdist" / "llama_cpp_python-0.3.36")]
    for r in roots:
        if r and (Path(r) / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py").is_file():
            return Path(r) / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    return None


def llama_cpp_convert(hf_dir: Path, out: Path, outtype: str = "f32", mmproj: bool = False) -> Path:
    """Run llama.cpp's own converter (with its own gguf-py) on `hf_dir`; returns the file it wrote."""
    import subprocess
    import sys

    script = sdist_converter()
    assert script is not None
    cmd = [sys.executable, str(script), str(hf_dir), "--outfile", str(out), "--outtype", outtype]
    if mmproj:
        cmd.append("--mmproj")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return out
