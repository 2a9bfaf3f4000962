from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from medcal_gui.core.errors import Cancelled
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.gguf_files.demo_model import (
    DEMO_MODEL_FILENAME,
    demo_model_path,
    demo_model_ready,
    demo_source_path,
    prepare_demo_model,
)
from medcal_gui.gguf_files.gguf_check import open_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def readers(demo_model: Path) -> tuple[GGUFReader, GGUFReader]:
    """(source Q4_K_M, demo F16), read once: a 262k-token vocabulary takes seconds to read."""
    return open_gguf(demo_source_path(demo_model.parent)), open_gguf(demo_model)


def test_demo_model_has_every_source_tensor_in_f16_and_f32(demo_model: Path,
                                                          readers: tuple[GGUFReader, GGUFReader]) -> None:
    src, dst = readers
    assert demo_model.name == DEMO_MODEL_FILENAME
    assert [t.name for t in dst.tensors] == [t.name for t in src.tensors]
    assert len(dst.tensors) == 236
    types = Counter(t.tensor_type.name for t in dst.tensors)
    assert set(types) == {"F16", "F32"}
    assert all(t.tensor_type.name == "F32" for t in dst.tensors if len(t.shape) == 1)
    assert all(t.tensor_type.name == "F16" for t in dst.tensors if len(t.shape) > 1)
    # every key kept, with the same value, except the file type (Q4_K_M 15 -> MOSTLY_F16 1)
    assert list(dst.fields) == list(src.fields)
    assert dst.fields["general.file_type"].contents() == 1
    assert src.fields["general.file_type"].contents() == 15
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                "gemma3.context_length", "general.name", "tokenizer.ggml.add_bos_token"):
        assert dst.fields[key].contents() == src.fields[key].contents(), key


@pytest.mark.parametrize("name", ["token_embd.weight", "blk.3.ffn_down.weight", "blk.0.attn_q.weight",
                                  "blk.17.attn_v.weight", "output_norm.weight"])
def test_weights_equal_gguf_dequantize_of_the_source(readers: tuple[GGUFReader, GGUFReader], name: str) -> None:
    src = {t.name: t for t in readers[0].tensors}[name]
    dst = {t.name: t for t in readers[1].tensors}[name]
    expected = dequantize(src.data, src.tensor_type).astype(dst.data.dtype)
    assert dst.data.shape == expected.shape
    assert np.array_equal(dst.data, expected)


def test_llama_cpp_loads_it_and_tokenizes_turn_markers(demo_model: Path) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(str(demo_model), n_ctx=64, verbose=False)
    try:
        assert llm.tokenize(b"<start_of_turn>", add_bos=False, special=True) == [105]
        assert llm.tokenize(b"<end_of_turn>", add_bos=False, special=True) == [106]
        assert llm.n_vocab() == 262144
        assert llm._model.n_params() == 268_098_176
        # real weights, not noise: a base model continues a sequence
        out = llm("Monday, Tuesday, Wednesday,", max_tokens=2, temperature=0.0)
        assert out["choices"][0]["text"].startswith(" Thursday")
    finally:
        llm.close()


def test_prepared_once_then_reused(demo_model: Path) -> None:
    mtime = demo_model.stat().st_mtime_ns
    assert demo_model_ready(demo_model.parent)
    seen: list[Progress] = []
    t0 = time.monotonic()
    again = prepare_demo_model(demo_model.parent, progress=seen.append)
    assert time.monotonic() - t0 < 1.0
    assert again == demo_model == demo_model_path(demo_model.parent)
    assert demo_model.stat().st_mtime_ns == mtime
    assert seen and seen[-1].message == "already prepared"


def test_a_touched_file_is_not_taken_as_ready(demo_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / DEMO_MODEL_FILENAME
    copy.write_bytes(b"GGUF" + b"\0" * 20)
    (tmp_path / (DEMO_MODEL_FILENAME + ".json")).write_text(
        (demo_model.parent / (DEMO_MODEL_FILENAME + ".json")).read_text())
    assert not demo_model_ready(tmp_path)


def test_cancel_leaves_no_file(demo_model: Path, tmp_path: Path) -> None:
    token = CancelToken()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.unit == "tensors" and p.done >= 5:
            token.cancel()

    dest = tmp_path / "models"
    # reuse the source already unpacked for the session (cheap), convert anew into an empty folder
    dest.mkdir()
    os.link(demo_source_path(demo_model.parent), dest / demo_source_path(demo_model.parent).name)
    (dest / (demo_source_path(demo_model.parent).name + ".json")).write_text(
        (demo_model.parent / (demo_source_path(demo_model.parent).name + ".json")).read_text())
    with pytest.raises(Cancelled):
        prepare_demo_model(dest, progress=progress, cancel=token)
    assert any(p.unit == "tensors" and p.done == 5 for p in seen)
    assert not demo_model_path(dest).exists()
    assert not demo_model_ready(dest)
    assert not [p for p in dest.iterdir() if p.name.startswith(TMP_PREFIX)]
