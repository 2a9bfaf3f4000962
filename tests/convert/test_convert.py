"""`medcal convert`: a Hugging Face Gemma 3 folder becomes a GGUF whose logits and tokens match transformers'."""

from __future__ import annotations

import errno
import hashlib
import json
import struct
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import gguf
import hf_fixture as hf
import numpy as np
import pytest
from convert_checks import PROMPT, TOKEN_TEXTS, _copy, _field, _leftovers, _llama, _llama_logits, gguf_contents  # noqa: F401

from medcal_gui.convert.config import NotAModelError, UnsupportedModelError, read_spec
from medcal_gui.convert.hf_to_gguf import convert_hf, is_hf_model_dir
from medcal_gui.convert.safetensors_io import SafetensorsCheckpoint, ShardError, widen
from medcal_gui.convert.tensors import TensorPlan, plan_language_model, write_gguf
from medcal_gui.convert.vocab import CONTROL, TokenizerError, parse_sentencepiece
from medcal_gui.core.errors import Cancelled, MedcalError
from medcal_gui.core.jobs import CancelToken, Progress

MISSING = hf.missing_reason()
needs_hf = pytest.mark.skipif(MISSING is not None, reason=f"HF reference unavailable: {MISSING}")




@needs_hf
@pytest.mark.parametrize("which", ["causal", "cond"])
def test_logits_match_transformers_f32(which: str, request: pytest.FixtureRequest) -> None:
    hf_dir: Path = request.getfixturevalue(f"{which}_dir")
    gguf_path: Path = request.getfixturevalue(f"{which}_f32")
    ids = hf.hf_tokenize(hf_dir, PROMPT)
    assert len(ids) > 3 * hf.TEXT["sliding_window"]  # the sliding window and the global layer both matter
    ours = _llama_logits(gguf_path, ids)
    ref = hf.hf_logits(hf_dir, ids)
    per_pos = np.abs(ours - ref).max(axis=-1)
    diff = float(per_pos.max())
    print(f"{which}: max |logit diff| = {diff:.2e} (first position {per_pos[0]:.1e}; logits up to "
          f"{np.abs(ref).max():.1f})")
    # The first position involves no GELU-table boundary case; later ones can differ by one float16 step of
    # llama.cpp's GELU table somewhere, which bounds the agreement at about 1e-3.
    assert per_pos[0] < 1e-4
    assert diff < 2e-3
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@needs_hf
@pytest.mark.parametrize("text", TOKEN_TEXTS)
def test_tokenization_matches_transformers(text: str, causal_dir: Path, causal_f32: Path) -> None:
    llm = _llama(causal_f32)
    assert llm.tokenize(text.encode("utf-8"), add_bos=True, special=True) == hf.hf_tokenize(causal_dir, text)


@needs_hf
def test_f16_and_bf16_round_like_llama_cpp_and_still_match(causal_dir: Path, hf_root: Path) -> None:
    st = SafetensorsCheckpoint(causal_dir)
    q_src = widen(np.frombuffer(_raw(st, "model.layers.0.self_attn.q_proj.weight"), "<f4"), "F32")
    norm_src = np.frombuffer(_raw(st, "model.layers.0.input_layernorm.weight"), "<f4")
    ids = hf.hf_tokenize(causal_dir, PROMPT)
    ref = hf.hf_logits(causal_dir, ids)
    for outtype, qtype in (("f16", gguf.GGMLQuantizationType.F16), ("bf16", gguf.GGMLQuantizationType.BF16)):
        out = convert_hf(causal_dir, hf_root / "out" / f"causal-{outtype}.gguf", outtype=outtype).out
        r = gguf.GGUFReader(str(out))
        ts = {t.name: t for t in r.tensors}
        assert ts["blk.0.attn_q.weight"].tensor_type == qtype
        assert ts["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
        assert ts["token_embd.weight"].tensor_type == qtype
        got = gguf.quants.dequantize(ts["blk.0.attn_q.weight"].data, qtype).reshape(-1)
        np.testing.assert_array_equal(got, gguf.quants.dequantize(gguf.quants.quantize(q_src, qtype), qtype))
        np.testing.assert_array_equal(ts["blk.0.attn_norm.weight"].data, norm_src + np.float32(1))
        assert _field(r, "general.file_type") == {"f16": 1, "bf16": 32}[outtype]
        diff = float(np.abs(_llama_logits(out, ids) - ref).max())
        print(f"{outtype}: max |logit diff| = {diff:.2e}")
        assert diff < 0.1


def _raw(st: SafetensorsCheckpoint, name: str) -> bytes:
    e = st.entries[name]
    with open(e.shard, "rb") as fh:
        fh.seek(e.start)
        return fh.read(e.nbytes)


# ---------------------------------------------------------------- metadata as llama.cpp's converter writes it

@needs_hf
def test_metadata_matches_llama_cpp_converter(causal_f32: Path, causal_dir: Path, sp_model: bytes) -> None:
    import sentencepiece as spm

    r = gguf.GGUFReader(str(causal_f32))
    assert _field(r, "general.architecture") == "gemma3"
    assert _field(r, "gemma3.block_count") == 6
    assert _field(r, "gemma3.embedding_length") == 64
    assert _field(r, "gemma3.attention.key_length") == 32
    assert _field(r, "gemma3.attention.value_length") == 32
    assert _field(r, "gemma3.attention.head_count_kv") == 1
    assert _field(r, "gemma3.attention.sliding_window") == 8
    assert _field(r, "gemma3.rope.freq_base") == pytest.approx(1e6)
    assert _field(r, "gemma3.rope.freq_base_swa") == pytest.approx(1e4)
    assert "gemma3.rope.scaling.type" not in r.fields
    assert "gemma3.attention.sliding_window_pattern" not in r.fields  # llama.cpp's default (every 6th) fits
    assert _field(r, "tokenizer.ggml.model") == "llama"
    assert [_field(r, f"tokenizer.ggml.{k}_token_id") for k in ("padding", "eos", "bos", "unknown")] == [0, 1, 2, 3]
    assert _field(r, "tokenizer.ggml.add_bos_token") is True
    assert _field(r, "tokenizer.ggml.add_eos_token") is False
    assert _field(r, "tokenizer.ggml.add_space_prefix") is False
    assert _field(r, "tokenizer.chat_template") == hf.GEMMA_TEMPLATE
    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    tokens, scores = _field(r, "tokenizer.ggml.tokens"), _field(r, "tokenizer.ggml.scores")
    types = _field(r, "tokenizer.ggml.token_type")
    assert len(tokens) == sp.get_piece_size()
    assert tokens[4:6] == ["<start_of_turn>", "<end_of_turn>"] and types[4:6] == [CONTROL, CONTROL]
    assert types[:4] == [CONTROL] * 4  # special in added_tokens_decoder: control, <unk> included (as llama.cpp)
    assert all(types[i] == 6 for i in range(sp.get_piece_size()) if sp.is_byte(i))
    normal = [i for i in range(6, sp.get_piece_size()) if not sp.is_byte(i)]
    assert all(tokens[i] == sp.id_to_piece(i) and scores[i] == pytest.approx(sp.get_score(i)) for i in normal)
    names = {t.name for t in r.tensors}
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    assert len(names) == 1 + 13 * 6 + 1


@needs_hf
def test_conditional_generation_writes_rope_scaling_and_skips_vision(cond_f32: Path) -> None:
    r = gguf.GGUFReader(str(cond_f32))
    assert _field(r, "gemma3.rope.scaling.type") == "linear"
    assert _field(r, "gemma3.rope.scaling.factor") == pytest.approx(8.0)
    assert _field(r, "gemma3.rope.freq_base_swa") == pytest.approx(1e4)
    assert not any(t.name.startswith(("v.", "mm.")) for t in r.tensors)
    # no tokenizer.json in this folder: the ids come from the vocabulary itself, as Gemma's real files give them
    assert [_field(r, f"tokenizer.ggml.{k}_token_id") for k in ("padding", "eos", "bos", "unknown")] == [0, 1, 2, 3]


def test_parse_sentencepiece_reads_pieces_scores_types() -> None:
    def piece(text: bytes, score: float, ptype: int) -> bytes:
        body = b"\x0a" + bytes([len(text)]) + text + b"\x15" + struct.pack("<f", score) + b"\x18" + bytes([ptype])
        return b"\x0a" + bytes([len(body)]) + body

    data = piece(b"<unk>", 0.0, 2) + piece(b"\xe2\x96\x81the", -1.5, 1) + b"\x12\x02\x08\x01"  # + trainer_spec
    assert parse_sentencepiece(data) == [(b"<unk>", 0.0, 2), ("\u2581the".encode(), -1.5, 1)]
    with pytest.raises(ValueError):
        parse_sentencepiece(data[:-3] + b"\x0a\x40")


# ---------------------------------------------------------------- layouts: shards, bf16, older key names

@needs_hf
def test_sharded_and_bf16_checkpoints(sp_model: bytes, hf_root: Path, causal_dir: Path) -> None:
    sharded = hf.make_causal(hf_root / "sharded" / "tiny-gemma3", sp_model, shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    a = convert_hf(causal_dir, hf_root / "out" / "layout-a.gguf", outtype="f32", hash_inputs=False)
    b = convert_hf(sharded, hf_root / "out" / "layout-b.gguf", outtype="f32", hash_inputs=False)
    assert gguf_contents(a.out) == gguf_contents(b.out)  # the same values and tensors
    # ... listed in the order their bytes lie in the shards: each shard is read front to back, once
    st_b = SafetensorsCheckpoint(sharded)
    assert len(st_b.shards) > 2
    plans = {p.name: p for p in plan_language_model(read_spec(sharded), st_b, len(gguf_contents(b.out)[0][
        "tokenizer.ggml.tokens"]), gguf.GGMLQuantizationType.F32)}
    names = [t.name for t in gguf.GGUFReader(str(b.out)).tensors]
    where = [(st_b.shards.index(plans[n].entry.shard), plans[n].entry.start) for n in names]
    assert sorted(plans) == sorted(names) and where == sorted(where)
    assert names != list(plans)  # not blk by blk, as planned

    bf = hf.make_causal(hf_root / "bf16" / "tiny-gemma3", sp_model, dtype="bfloat16")
    st = SafetensorsCheckpoint(bf)
    name = "model.layers.0.mlp.up_proj.weight"
    assert st.entries[name].dtype == "BF16"
    src_words = np.frombuffer(_raw(st, name), "<u2")
    out = convert_hf(bf, hf_root / "out" / "bf16-bf16.gguf", outtype="bf16", hash_inputs=False).out
    t = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}["blk.0.ffn_up.weight"]
    np.testing.assert_array_equal(np.asarray(t.data).view("<u2").reshape(-1), src_words)  # bf16 -> bf16: same bits
    out32 = convert_hf(bf, hf_root / "out" / "bf16-f32.gguf", outtype="f32", hash_inputs=False).out
    t32 = {t.name: t for t in gguf.GGUFReader(str(out32)).tensors}["blk.0.ffn_up.weight"]
    np.testing.assert_array_equal(np.asarray(t32.data).reshape(-1).view("<u4") >> 16, src_words)


@needs_hf
def test_newer_key_layout_converts_identically(cond_dir: Path, hf_root: Path) -> None:
    """transformers >= 4.52 (in memory) names weights model.language_model.*; older files language_model.model.*."""
    import shutil

    other = hf_root / "newlayout" / cond_dir.name
    shutil.copytree(cond_dir, other)
    _rename_keys(other / "model.safetensors", {"language_model.model.": "model.language_model.",
                                               "vision_tower.": "model.vision_tower.",
                                               "multi_modal_projector.": "model.multi_modal_projector."})
    a = convert_hf(cond_dir, hf_root / "out" / "old-layout.gguf", outtype="f32", hash_inputs=False)
    b = convert_hf(other, hf_root / "out" / "new-layout.gguf", outtype="f32", hash_inputs=False)
    assert a.sha256 == b.sha256


def _rename_keys(path: Path, mapping: dict[str, str]) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    new: dict[str, Any] = {}
    for k, v in header.items():
        for old, repl in mapping.items():
            if k.startswith(old):
                k = repl + k[len(old):]
                break
        new[k] = v
    raw = json.dumps(new).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def test_bf16_widening_is_exact_for_every_bit_pattern() -> None:
    words = np.arange(1 << 16, dtype=np.uint16)
    got = widen(words, "BF16")
    ref = np.frombuffer(b"".join(struct.pack("<HH", 0, int(w)) for w in words), "<f4")
    np.testing.assert_array_equal(got.view("<u4"), ref.view("<u4"))  # bitwise, NaNs included
    try:
        import torch
    except ImportError:
        return
    tref = torch.from_numpy(words.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(got.view("<u4"), tref.view("<u4"))


def test_streaming_keeps_memory_to_a_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.convert import safetensors_io as convert_safetensors

    monkeypatch.setattr(convert_safetensors, "CHUNK_ELEMENTS", 1 << 20)  # slices of 4 MB as float32
    rows, cols = 2048, 4096  # 8M bf16 values: 16 MB on disk, 32 MB as float32
    shard = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    words = (rng.standard_normal((rows, cols), dtype=np.float32).view("<u4") >> 16).astype("<u2")
    header = json.dumps({"w": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [0, words.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(shard, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        fh.write(words.tobytes())
    del words
    st = SafetensorsCheckpoint(tmp_path)
    plan = TensorPlan("w.weight", st.entries["w"], gguf.GGMLQuantizationType.F32, (rows, cols))
    tracemalloc.start()
    try:
        write_gguf(tmp_path / "out.gguf", gguf.GGUFWriter(None, "gemma3"), [plan], stage="t",
                   progress=lambda p: None, cancel=CancelToken())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak traced memory {peak / 1e6:.1f} MB for a {rows * cols * 4 / 1e6:.0f} MB float32 tensor")
    # A whole-tensor conversion needs raw + float32 + output: 48 MB here. Streaming holds a slice being read
    # and converted (raw, float32, output: 2.5 slices of float32) and the writer's queue and the slice it
    # writes: under (QUEUED + 3) slices of 4 MB, whatever the tensor's size.
    from medcal_gui.convert.output_stream import HashingWriter

    slice_f32 = (1 << 20) * 4
    assert peak < (HashingWriter.QUEUED + 3) * slice_f32 < rows * cols * 4
    r = gguf.GGUFReader(str(tmp_path / "out.gguf"))
    assert r.tensors[0].data.shape == (rows, cols)


# ---------------------------------------------------------------- job protocol: manifest, cancel, CLI

@needs_hf
def test_manifest_sha256_and_progress(causal_dir: Path, tmp_path: Path) -> None:
    seen: list[Progress] = []
    res = convert_hf(causal_dir, tmp_path / "m.gguf", outtype="f16", progress=seen.append)
    out = tmp_path / "m.gguf"
    assert res.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (tmp_path / "m.gguf.sha256").read_text() == f"{res.sha256}  m.gguf\n"
    doc = json.loads((tmp_path / "m.gguf.manifest.json").read_text())
    for key in ("created_utc", "versions", "input", "output", "type", "imatrix", "options", "metadata_written",
                "timings_s", "tensors", "warnings"):
        assert key in doc
    assert doc["output"]["sha256"] == res.sha256 and doc["type"]["name"] == "F16"
    assert {f["name"] for f in doc["input"]["files"]} >= {"config.json", "model.safetensors", "tokenizer.model"}
    for row in doc["input"]["files"]:  # hashed on their own thread while the conversion ran
        data = (causal_dir / row["name"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
    listing = "".join(f"{r['sha256']}  {r['name']}\n" for r in doc["input"]["files"])
    assert doc["input"]["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    convert_steps = [p for p in seen if p.stage == "convert" and p.unit == "tensors"]
    assert convert_steps[-1].done == convert_steps[-1].total == res.tensors
    assert json.loads(json.dumps(res.to_json()))["out"] == str(out)


@needs_hf
def test_cancel_leaves_nothing(causal_dir: Path, tmp_path: Path) -> None:
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage == "convert" and p.done >= 5:
            token.cancel()

    with pytest.raises(Cancelled):
        convert_hf(causal_dir, tmp_path / "c.gguf", progress=progress, cancel=token)
    assert _leftovers(tmp_path) == []


@needs_hf
def test_cli_convert_json(causal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main

    rc = main(["convert", str(causal_dir), "-o", str(tmp_path / "cli.gguf"), "--outtype", "bf16", "--json",
               "--no-hash-input"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outtype"] == "bf16" and out["architecture"] == "Gemma3ForCausalLM"
    assert main(["convert", str(tmp_path), "-o", str(tmp_path / "x.gguf")]) == 2


@needs_hf
def test_is_hf_model_dir(causal_dir: Path, tmp_path: Path) -> None:
    assert is_hf_model_dir(causal_dir)
    assert not is_hf_model_dir(tmp_path)
    assert not is_hf_model_dir(causal_dir / "config.json")


# ---------------------------------------------------------------- bad input: a clear message, nothing written

def _expect_refusal(hf_dir: Path, out_dir: Path, exc: type[MedcalError], *words: str) -> None:
    out_dir.mkdir(exist_ok=True)
    with pytest.raises(exc) as info:
        convert_hf(hf_dir, out_dir / "x.gguf")
    for w in words:
        assert w in info.value.message
    assert _leftovers(out_dir) == []


def test_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    _expect_refusal(tmp_path, tmp_path / "o", NotAModelError, "config.json")


def test_refuses_an_unsupported_architecture(tmp_path: Path) -> None:
    d = tmp_path / "llama"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    _expect_refusal(d, tmp_path / "o", UnsupportedModelError, "LlamaForCausalLM", "Gemma3ForCausalLM",
                    "Gemma3ForConditionalGeneration")


@needs_hf
def test_refuses_missing_and_truncated_shards(sp_model: bytes, hf_root: Path, tmp_path: Path) -> None:
    src = hf.make_causal(hf_root / "shards-bad" / "m", sp_model, shard_size="100KB")
    shards = sorted(src.glob("model-*.safetensors"))
    assert len(shards) >= 2
    missing = _copy(src, tmp_path / "missing")
    (missing / shards[-1].name).unlink()
    _expect_refusal(missing, tmp_path / "o1", ShardError, shards[-1].name)
    cut = _copy(src, tmp_path / "cut")
    data = (cut / shards[0].name).read_bytes()
    (cut / shards[0].name).write_bytes(data[: len(data) - 1000])
    _expect_refusal(cut, tmp_path / "o2", ShardError, "cut short", shards[0].name)
    empty = _copy(src, tmp_path / "empty")
    (empty / shards[0].name).write_bytes(b"")
    _expect_refusal(empty, tmp_path / "o3", ShardError, shards[0].name)


@needs_hf
def test_refuses_a_tokenizer_without_turn_tokens(hf_root: Path, causal_dir: Path, tmp_path: Path) -> None:
    d = _copy(causal_dir, tmp_path / "noturn")
    for f in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (d / f).unlink(missing_ok=True)
    sp = hf.train_sentencepiece(symbols=())
    hf.save_tokenizer(d, sp, turn_tokens=False)
    _expect_refusal(d, tmp_path / "o", TokenizerError, "<start_of_turn>")
    (d / "tokenizer.model").unlink()
    _expect_refusal(d, tmp_path / "o2", TokenizerError, "tokenizer.model")


@needs_hf
def test_refuses_config_that_does_not_fit_the_weights(causal_dir: Path, tmp_path: Path) -> None:
    d = _copy(causal_dir, tmp_path / "wrongcfg")
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 256
    (d / "config.json").write_text(json.dumps(cfg))
    _expect_refusal(d, tmp_path / "o", UnsupportedModelError, "config.json does not match")


@needs_hf
def test_refuses_output_over_an_input(causal_dir: Path) -> None:
    from medcal_gui.core.errors import OutputError

    with pytest.raises(OutputError):
        convert_hf(causal_dir, causal_dir / "model.safetensors", hash_inputs=False)
    assert (causal_dir / "model.safetensors").stat().st_size > 0


# ---------------------------------------------------------------- the vision tower as mmproj

@needs_hf
def test_mmproj_is_written_and_loads_in_llama_cpp(cond_dir: Path, tmp_path: Path) -> None:
    from llama_cpp import mtmd_cpp

    res = convert_hf(cond_dir, tmp_path / "lm.gguf", outtype="f16", mmproj=tmp_path / "lm-mmproj.gguf",
                     hash_inputs=False)
    assert res.mmproj is not None and res.mmproj_tensors == 2 + 1 + 2 + 16 * 2 + 2  # embd, post_ln, blocks, mm
    r = gguf.GGUFReader(str(res.mmproj))
    assert _field(r, "general.architecture") == "clip"
    assert _field(r, "clip.projector_type") == "gemma3"
    assert _field(r, "clip.vision.projection_dim") == 64
    assert _field(r, "clip.vision.block_count") == 2
    ts = {t.name: t for t in r.tensors}
    assert not any(".head." in n for n in ts)
    assert ts["mm.input_projection.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert ts["v.patch_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert ts["v.position_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert ts["v.blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    st = SafetensorsCheckpoint(cond_dir)
    norm = np.frombuffer(_raw(st, "multi_modal_projector.mm_soft_emb_norm.weight"), "<f4")
    np.testing.assert_array_equal(ts["mm.soft_emb_norm.weight"].data, norm + np.float32(1))
    ln = np.frombuffer(_raw(st, "vision_tower.vision_model.encoder.layers.0.layer_norm1.weight"), "<f4")
    np.testing.assert_array_equal(ts["v.blk.0.ln1.weight"].data, ln)  # SigLIP's LayerNorm: no +1
    assert (tmp_path / "lm-mmproj.gguf.sha256").is_file()

    llm = _llama(res.out)
    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu = False
    ctx = mtmd_cpp.mtmd_init_from_file(str(res.mmproj).encode(), llm.model, params)
    assert ctx
    try:
        assert mtmd_cpp.mtmd_support_vision(ctx)
    finally:
        mtmd_cpp.mtmd_free(ctx)


@needs_hf
def test_mmproj_refused_for_a_text_only_model(causal_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="no vision tower"):
        convert_hf(causal_dir, tmp_path / "a.gguf", mmproj=tmp_path / "b.gguf")
    assert _leftovers(tmp_path) == []


@needs_hf
def test_tokenizer_json_drives_special_ids_and_add_bos(causal_dir: Path, tmp_path: Path) -> None:
    """Real Gemma folders also ship tokenizer.json: its added tokens and post-processor decide, as in gguf."""
    from medcal_gui.convert.vocab import load_vocab

    d = _copy(causal_dir, tmp_path / "withjson")
    (d / "tokenizer.json").write_text(json.dumps({
        "added_tokens": [{"id": 0, "content": "<pad>"}, {"id": 1, "content": "<eos>"},
                         {"id": 2, "content": "<bos>"}, {"id": 3, "content": "<unk>"}],
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
    }))
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["add_bos_token"] = False  # the post-processor wins, as in llama.cpp's gguf-py
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    v = load_vocab(d, None)
    assert v.add_special["bos"] is True and v.add_special["eos"] is False
    assert {k: v.special_ids[k] for k in ("pad", "eos", "bos", "unk")} == {"pad": 0, "eos": 1, "bos": 2, "unk": 3}
    assert v.chat_template == hf.GEMMA_TEMPLATE


@pytest.mark.parametrize("direct", [True, False], ids=["past-the-page-cache", "through-the-page-cache"])
def test_a_write_error_on_the_writer_thread_reaches_the_converter(tmp_path: Path, direct: bool) -> None:
    """The slices are written (and hashed) on threads: a write's failure (here the file-size limit, EFBIG, as a
    full disk fails) is raised in the converter, not lost, and both threads end."""
    import resource

    from medcal_gui.convert.output_stream import HashingWriter

    target = tmp_path / "big.bin"
    target.write_bytes(b"head")
    limit = 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    with open(target, "r+b") as fh:
        fh.seek(4)
        sink = HashingWriter(fh, b"head", direct=direct)
        if direct and not sink.direct:
            sink.stop()
            pytest.skip(f"the file system of {tmp_path} refuses O_DIRECT")
        assert sink.direct is direct
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # Python ignores SIGXFSZ: writes fail, EFBIG
        try:
            with pytest.raises(OSError) as info:
                for _ in range(40):
                    sink.put(b"x" * limit)
                sink.finish()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            sink.stop()
        # the system's own error (write_gguf says it in words: the CLI test below)
        assert info.value.errno == errno.EFBIG
        assert not any(t.name.startswith("medcal-convert-") and t.is_alive() for t in threading.enumerate())
    assert target.stat().st_size < 2 * limit  # of the 40 MB put


@needs_hf
def test_a_disk_that_fills_up_mid_conversion_gives_a_plain_error_and_leaves_nothing(causal_dir: Path,
                                                                                     tmp_path: Path) -> None:
    """`medcal convert` when the output stops fitting half-way (here the file-size limit: the free-space check
    passed): an error in words, exit 2, no traceback, and nothing left in the output folder."""
    import os
    import resource
    import subprocess
    import sys

    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))

    r = subprocess.run([sys.executable, "-m", "medcal_gui", "convert", str(causal_dir), "-o",
                        str(out_dir / "tiny.gguf"), "--outtype", "f32"],
                       capture_output=True, text=True, preexec_fn=limit, env={**os.environ, "MEDCAL_NO_LIMITS": "1"},
                       timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert f"medcal convert: error: Writing the converted model in {out_dir} failed" in r.stderr
    assert "is full" in r.stderr and "Nothing was kept" in r.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == []
