"""The tiny Gemma-3 GGUF is a real model llama.cpp loads, tokenizes like Gemma and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import pytest

from medcal_gui.llama.tiny_model import tiny_vocab, write_tiny_gemma3


@pytest.fixture(scope="module")
def llm(tiny_model: Path) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(tiny_model), n_ctx=256, verbose=False)


def test_tiny_model_generates_tokens(llm: llama_cpp.Llama) -> None:
    out: Any = llm("The patient has chest pain", max_tokens=6, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    assert llm.n_vocab() == len(tiny_vocab()[0])


def test_turn_markers_are_single_control_tokens(llm: llama_cpp.Llama) -> None:
    assert llm.tokenize(b"<start_of_turn>", add_bos=False, special=True) == [4]
    assert llm.tokenize(b"<end_of_turn>", add_bos=False, special=True) == [5]
    assert len(llm.tokenize(b"<start_of_turn>", add_bos=False, special=False)) > 1
    assert llm.tokenize(b"hi", add_bos=True, special=True)[0] == 2


def test_known_words_are_single_tokens(llm: llama_cpp.Llama) -> None:
    toks = llm.tokenize(b" patient has atrial fibrillation", add_bos=False, special=True)
    assert len(toks) == 4


def test_unknown_characters_fall_back_to_bytes(llm: llama_cpp.Llama) -> None:
    toks = llm.tokenize("\u00e9".encode(), add_bos=False, special=True)  # é = C3 A9
    assert toks == [6 + 0xC3, 6 + 0xA9]


def test_metadata_and_shapes_fit_k_quants(tiny_model: Path) -> None:
    r = gguf.GGUFReader(str(tiny_model))
    assert r.fields["general.architecture"].contents() == "gemma3"
    assert r.fields["tokenizer.ggml.bos_token_id"].contents() == 2
    assert r.fields["tokenizer.ggml.eos_token_id"].contents() == 1
    mats = [t for t in r.tensors if len(t.shape) == 2]
    assert len(mats) == 1 + 7 * 2
    assert all(int(t.shape[0]) % 256 == 0 for t in mats)


def test_seed_changes_weights_deterministically(tmp_path: Path) -> None:
    a = write_tiny_gemma3(tmp_path / "a.gguf", seed=1, n_layer=1).read_bytes()
    b = write_tiny_gemma3(tmp_path / "b.gguf", seed=1, n_layer=1).read_bytes()
    c = write_tiny_gemma3(tmp_path / "c.gguf", seed=2, n_layer=1).read_bytes()
    assert a == b
    assert a != c


def test_rejects_sizes_k_quants_cannot_take(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_tiny_gemma3(tmp_path / "x.gguf", n_embd=64)
    assert not (tmp_path / "x.gguf").exists()
