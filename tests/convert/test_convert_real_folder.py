"""A tiny folder laid out like a real MedGemma download, converted by medcal and by llama.cpp's own converter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import hf_fixture as hf
import pytest
from convert_checks import PROMPT, TOKEN_TEXTS, _copy, _field, _leftovers, _llama, _llama_logits, gguf_contents  # noqa: F401

from medcal_gui.convert.hf_to_gguf import convert_hf
from medcal_gui.convert.vocab import CONTROL

MISSING = hf.missing_reason()
needs_hf = pytest.mark.skipif(MISSING is not None, reason=f"HF reference unavailable: {MISSING}")


# ------------------------------------------------------------- a real download's layout, against llama.cpp's converter

CONVERTER = hf.sdist_converter()
needs_ref = pytest.mark.skipif(MISSING is not None or CONVERTER is None,
                               reason=f"llama.cpp's converter unavailable: {MISSING or 'sdist not unpacked'}")


def _assert_same(ours: Path, ref: Path, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    kv_a, ts_a = gguf_contents(ours)
    kv_b, ts_b = gguf_contents(ref)
    keys = (set(kv_a) | set(kv_b)) - set(ignore)
    diff = {k: (kv_a.get(k, "<missing>"), kv_b.get(k, "<missing>")) for k in sorted(keys) if kv_a.get(k) != kv_b.get(k)}
    assert diff == {}, f"metadata differs from llama.cpp's: {str(diff)[:2000]}"
    assert ts_a == ts_b
    # in the same order: shard by shard, front to back (how medcal reads them, and how llama.cpp lists them)
    assert [t.name for t in gguf.GGUFReader(str(ours)).tensors] == [t.name for t in gguf.GGUFReader(str(ref)).tensors]
    return kv_a


@pytest.fixture(scope="session")
def real_dir(hf_root: Path) -> Path:
    if MISSING:
        pytest.skip(f"HF reference unavailable: {MISSING}")
    return hf.make_real_folder(hf_root / "real" / "tiny-medgemma-4b-it")


@pytest.fixture(scope="session")
def real_ref(real_dir: Path, hf_root: Path) -> tuple[Path, Path]:
    if CONVERTER is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py is not unpacked (set MEDCAL_LLAMA_SDIST)")
    out = hf_root / "ref"
    out.mkdir(exist_ok=True)
    return (hf.llama_cpp_convert(real_dir, out / "lm.gguf"),
            hf.llama_cpp_convert(real_dir, out / "mmproj.gguf", mmproj=True))


@pytest.fixture(scope="session")
def real_ours(real_dir: Path, hf_root: Path) -> Any:
    return convert_hf(real_dir, hf_root / "ours" / "lm.gguf", outtype="f32", mmproj=hf_root / "ours" / "mm.gguf",
                      hash_inputs=False)


@needs_ref
def test_real_folder_matches_llama_cpp_converter(real_dir: Path, real_ref: tuple[Path, Path], real_ours: Any) -> None:
    """Every metadata value and tensor equals convert_hf_to_gguf.py's, on a folder with a real download's files."""
    kv = _assert_same(real_ours.out, real_ref[0])
    assert real_ours.warnings == []
    # the chat template lives only in chat_template.jinja
    assert "chat_template" not in json.loads((real_dir / "tokenizer_config.json").read_text())
    assert kv["tokenizer.chat_template"] == hf.GEMMA_TEMPLATE
    # general.name and size_label as llama.cpp's Metadata heuristics write them, sampling from generation_config
    assert kv["general.name"] != real_dir.name and kv["general.size_label"]
    assert kv["general.sampling.top_k"] == 64 and kv["general.sampling.top_p"] == pytest.approx(0.95)
    # the image tokens are control tokens, <image_soft_token> after the SentencePiece model too
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    for t in (*hf.IMAGE_TOKENS, hf.IMAGE_SOFT):
        assert types[tokens.index(t)] == CONTROL, t
    # vocab_size is above the tokenizer's: llama.cpp pads with [PAD<id>] rows
    cfg = json.loads((real_dir / "config.json").read_text())
    assert len(tokens) == cfg["text_config"]["vocab_size"] and tokens[-1].startswith("[PAD")


@needs_ref
def test_real_folder_mmproj_matches_and_reads_preprocessor_config(real_dir: Path, real_ref: tuple[Path, Path],
                                                                  real_ours: Any) -> None:
    kv = _assert_same(real_ours.mmproj, real_ref[1])
    pre = json.loads((real_dir / "preprocessor_config.json").read_text())
    assert kv["clip.vision.image_mean"] == pytest.approx(pre["image_mean"])
    assert kv["clip.vision.image_std"] == pytest.approx(pre["image_std"])
    assert pre["image_mean"] != [0.5, 0.5, 0.5]


@needs_ref
def test_generation_configs_end_ids_all_end_generation(real_dir: Path, real_ours: Any) -> None:
    """generation_config.json lists [<eos>, <end_of_turn>]: the GGUF's EOS is <eos> (as llama.cpp writes it),
    and llama.cpp ends generation at every id of the list."""
    import llama_cpp

    ids = json.loads((real_dir / "generation_config.json").read_text())["eos_token_id"]
    assert len(ids) == 2
    llm = _llama(real_ours.out)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    assert all(llama_cpp.llama_vocab_is_eog(vocab, i) for i in ids)
    assert not llama_cpp.llama_vocab_is_eog(vocab, 2)


@needs_ref
def test_tokenizer_json_only_folder(real_dir: Path, real_ref: tuple[Path, Path], tmp_path: Path) -> None:
    """A folder with tokenizer.json but no tokenizer.model converts: the same tokens and types as llama.cpp
    writes from tokenizer.model, and llama.cpp then tokenizes as transformers' tokenizer.json does."""
    from transformers import AutoTokenizer

    d = _copy(real_dir, tmp_path / "jsononly")
    (d / "tokenizer.model").unlink()
    res = convert_hf(d, tmp_path / "j.gguf", outtype="f32", hash_inputs=False)
    kv, _ = gguf_contents(res.out)
    ref, _ = gguf_contents(real_ref[0])
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.model", "tokenizer.chat_template"):
        assert kv[key] == ref[key], key
    fast = AutoTokenizer.from_pretrained(str(d))
    llm = _llama(res.out)
    for text in TOKEN_TEXTS + ["<start_of_image><image_soft_token><end_of_image> scan"]:
        assert llm.tokenize(text.encode("utf-8"), add_bos=True, special=True) == list(fast(text).input_ids), text


@needs_hf
def test_convert_checks_free_disk_and_memory_first(causal_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.budget.limits import LimitError

    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "1K")
    with pytest.raises(LimitError, match=r"The conversion needs about .* of free disk in .*; 0 MB are free"):
        convert_hf(causal_dir, tmp_path / "o" / "x.gguf", hash_inputs=False)
    assert _leftovers(tmp_path / "o") == []
    monkeypatch.delenv("MEDCAL_FAKE_FREE_DISK")
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    with pytest.raises(LimitError, match=r"The conversion needs about .* of free memory.*; 50 MB are free"):
        convert_hf(causal_dir, tmp_path / "o" / "x.gguf", hash_inputs=False)
    assert _leftovers(tmp_path / "o") == []
