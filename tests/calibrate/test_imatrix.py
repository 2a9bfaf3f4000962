"""Importance-matrix collection on the tiny real model, checked against counts and a numpy reference."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
import pytest

from medcal_gui.calibrate.imatrix import NonFiniteActivations, compute_imatrix
from medcal_gui.calibrate.imatrix_io import ImatrixData
from medcal_gui.cli.main import main
from medcal_gui.core.errors import Cancelled, InputError
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.gguf_files.gguf_header import read_header

CTX = 128
NAMES = sorted(f"blk.{i}.{w}.weight" for i in range(2)
               for w in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"))


@pytest.fixture(scope="module")
def text(sample_file: Path) -> str:
    return sample_file.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def run4(tiny_model: Path, text: str):  # type: ignore[no-untyped-def]
    return compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=4)


def test_entries_counts_and_chunks(run4) -> None:  # type: ignore[no-untyped-def]
    d = run4.data
    assert d.names() == NAMES
    for name in NAMES:
        e = d.entries[name]
        assert e.counts.tolist() == [4 * CTX]
        assert e.in_sum2.shape == (1, 512 if "ffn_down" in name else 256)
        assert (e.in_sum2 > 0).all()
    assert (d.chunk_count, d.chunk_size) == (4, CTX)
    assert run4.chunks == 4 and run4.tokens_processed == 4 * CTX
    assert d.datasets == ["<text>"]


def test_attention_inputs_match_numpy_reference(run4, tiny_model: Path, text: str) -> None:  # type: ignore[no-untyped-def]
    """blk.0.attn_{q,k,v} see RMSNorm(embedding * sqrt(n_embd)) * attn_norm: recompute that in numpy."""
    r = gguf.GGUFReader(str(tiny_model))
    t = {x.name: np.asarray(x.data, dtype=np.float64) for x in r.tensors}
    emb, norm_w = t["token_embd.weight"], t["blk.0.attn_norm.weight"]
    vocab = llama_cpp.Llama(str(tiny_model), vocab_only=True, verbose=False)
    toks = np.array(vocab.tokenize(text.encode(), add_bos=True, special=True))
    chunks = toks[: 4 * CTX].reshape(4, CTX).copy()
    chunks[:, 0] = 2  # BOS first in every chunk
    x = emb[chunks.reshape(-1)] * np.sqrt(emb.shape[1])
    x = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + 1e-6) * norm_w
    ref = (x * x).sum(axis=0)
    for w in ("attn_q", "attn_k", "attn_v"):
        got = run4.data.entries[f"blk.0.{w}.weight"].in_sum2[0]
        np.testing.assert_allclose(got, ref, rtol=2e-3)


def test_collection_is_deterministic(run4, tiny_model: Path, text: str) -> None:  # type: ignore[no-untyped-def]
    again = compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=4)
    assert again.data is not None
    for name in NAMES:
        np.testing.assert_array_equal(again.data.entries[name].in_sum2, run4.data.entries[name].in_sum2)


def test_gguf_round_trip_is_exact_and_shaped_like_llama_imatrix(run4, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = run4.data.save(tmp_path / "m.gguf", "gguf")
    r = gguf.GGUFReader(str(p))
    assert r.fields["general.type"].contents() == "imatrix"
    assert "general.architecture" not in r.fields
    assert r.fields["imatrix.chunk_count"].contents() == 4
    assert r.fields["imatrix.chunk_size"].contents() == CTX
    assert r.fields["imatrix.datasets"].contents() == ["<text>"]
    shapes = {x.name: [int(s) for s in x.shape] for x in r.tensors}
    assert shapes["blk.0.ffn_down.weight.in_sum2"] == [512, 1]
    assert shapes["blk.0.ffn_down.weight.counts"] == [1, 1]
    assert [x.name for x in r.tensors][:2] == ["blk.0.attn_k.weight.in_sum2", "blk.0.attn_k.weight.counts"]
    back = ImatrixData.load(p)
    assert back.names() == NAMES and not back.is_legacy
    for name in NAMES:
        np.testing.assert_array_equal(back.entries[name].in_sum2, run4.data.entries[name].in_sum2)
        np.testing.assert_array_equal(back.entries[name].counts, run4.data.entries[name].counts)


def test_a_gguf_imatrix_reads_as_gguf_reader_reads_it(run4, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The loader reads the file with medcal's header reader (gguf.GGUFReader took 45 ms of every quantize):
    the same values as GGUFReader, tensor by tensor."""
    p = run4.data.save(tmp_path / "m.gguf", "gguf")
    r = gguf.GGUFReader(str(p))
    back = ImatrixData.load(p)
    for t in r.tensors:
        name, part = t.name.rsplit(".", 1)
        mine = back.entries[name].in_sum2 if part == "in_sum2" else back.entries[name].counts
        np.testing.assert_array_equal(mine.reshape(-1), np.asarray(t.data, dtype=np.float32).reshape(-1))
    assert len(r.tensors) == 2 * len(back.entries)


def test_a_damaged_gguf_imatrix_is_an_input_error_naming_it(run4, tiny_model: Path,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    p = run4.data.save(tmp_path / "m.gguf", "gguf")
    raw = p.read_bytes()
    first = read_header(p).tensors[0]
    at = raw.index(first.name.encode()) + len(first.name) + 4 + 8 * len(first.shape)  # its type id
    as_f16 = raw[:at] + (1).to_bytes(4, "little") + raw[at + 4:]
    cases = {"data-cut": (raw[: len(raw) - 100], "truncated"), "header-cut": (raw[:200], "not a readable GGUF"),
             "f16": (as_f16, f"tensor {first.name} is not F32"),
             "a-model": (tiny_model.read_bytes(), "holds no importance-matrix data")}
    for label, (data, words) in cases.items():
        bad = tmp_path / f"{label}.gguf"
        bad.write_bytes(data)
        with pytest.raises(InputError, match=words) as e:
            ImatrixData.load(bad)
        assert str(bad) in str(e.value), label


def test_dat_round_trip(run4, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = run4.data.save(tmp_path / "m.dat", "dat")
    raw = p.read_bytes()
    assert int.from_bytes(raw[:4], "little") == len(NAMES)
    back = ImatrixData.load(p, chunk_size=CTX)
    assert back.is_legacy and back.chunk_count == 4 and back.datasets == ["<text>"]
    for name in NAMES:
        assert back.entries[name].counts.tolist() == [4 * CTX]
        np.testing.assert_allclose(back.entries[name].in_sum2, run4.data.entries[name].in_sum2, rtol=1e-6)
    imp_a, imp_b = run4.data.importance(), back.importance()
    for name in NAMES:
        np.testing.assert_allclose(imp_b[name], imp_a[name], rtol=1e-6)
    assert len(back.to_dat_bytes()) == len(raw)


def test_importance_is_sum_over_count(run4) -> None:  # type: ignore[no-untyped-def]
    imp = run4.data.importance()
    e = run4.data.entries["blk.1.ffn_up.weight"]
    np.testing.assert_allclose(imp["blk.1.ffn_up.weight"], e.in_sum2[0] / (4 * CTX), rtol=1e-7)
    assert imp["blk.1.ffn_up.weight"].dtype == np.float32


def test_merge_adds_sums_counts_and_datasets(run4) -> None:  # type: ignore[no-untyped-def]
    a = ImatrixData(chunk_size=CTX)
    a.merge(run4.data)
    a.merge(run4.data)
    for name in NAMES:
        assert a.entries[name].counts.tolist() == [8 * CTX]
        np.testing.assert_allclose(a.entries[name].in_sum2, 2 * run4.data.entries[name].in_sum2, rtol=1e-6)
    assert a.datasets == ["<text>", "<text>"]
    assert a.chunk_count == 8
    assert run4.data.entries[NAMES[0]].counts.tolist() == [4 * CTX]  # the source is untouched


def test_in_file_is_merged_into_a_new_run(run4, tiny_model: Path, text: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prev = run4.data.save(tmp_path / "prev.gguf")
    res = compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=1, in_files=[prev],
                          out=tmp_path / "all.gguf")
    back = ImatrixData.load(tmp_path / "all.gguf")
    assert back.entries[NAMES[0]].counts.tolist() == [5 * CTX]
    assert back.chunk_count == 5 and res.chunk_count == 5
    assert back.datasets == ["<text>", "<text>"]


def test_progress_reports_chunks_rate_and_ppl(tiny_model: Path, text: str) -> None:
    seen: list[Progress] = []
    res = compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=3, compute_ppl=True, progress=seen.append)
    chunks = [p for p in seen if p.unit == "chunks"]
    assert [p.done for p in chunks] == [1, 2, 3]
    assert all(p.total == 3 and p.rate and p.rate_unit == "tokens" for p in chunks)
    assert "ppl" in chunks[-1].extra
    # a random model over a 772-token vocabulary: perplexity is finite and large
    assert res.ppl is not None and 10 < res.ppl < 1e5


def test_calibration_files_are_read_and_named(tiny_model: Path, sample_file: Path, tmp_path: Path) -> None:
    res = compute_imatrix(tiny_model, [sample_file], n_ctx=CTX, n_chunks=1)
    assert res.datasets == [str(sample_file)]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 200)
    with pytest.raises(InputError, match="latin1.txt"):
        compute_imatrix(tiny_model, [bad], n_ctx=CTX)


def test_too_little_text_is_refused(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="tokenizes to only"):
        compute_imatrix(tiny_model, ["the patient"], n_ctx=CTX)


def test_cancel_mid_chunk_stops_within_a_second_and_writes_nothing(tiny_model: Path, text: str,
                                                                   tmp_path: Path) -> None:
    """A cancel in the middle of a chunk stops inside it (llama.cpp's abort callback), not at its end: within
    a second, or within half a chunk's time on a machine so loaded that one chunk takes longer than two."""
    token = CancelToken()
    out = tmp_path / "never.gguf"
    ends: list[float] = []

    def progress(p: Progress) -> None:
        if p.unit == "chunks" and p.done >= 1:
            ends.append(time.monotonic())
            if len(ends) == 1:  # the first chunk is done: cancel a little into the second
                threading.Timer(0.05, token.cancel).start()

    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        compute_imatrix(tiny_model, [text * 40], n_ctx=2048, out=out, cancel=token, progress=progress)
    assert token.cancelled_at is not None and len(ends) == 1  # stopped inside the second chunk
    chunk_s = ends[0] - t0  # the first chunk, model load included: an upper bound of one chunk's time
    assert time.monotonic() - token.cancelled_at < max(1.0, chunk_s / 2)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_activations_name_the_tensor(tiny_model: Path, text: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    shutil.copy(tiny_model, broken)
    r = gguf.GGUFReader(str(broken), "r+")
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    emb.data[:] = np.float32(3e38)  # x*x overflows to inf in the first projection's activations
    del r
    with pytest.raises(NonFiniteActivations, match=r"blk\.0\."):
        compute_imatrix(broken, [text], n_ctx=CTX, n_chunks=1, out=tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_cli_round_trip(tiny_model: Path, sample_file: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.dat"
    rc = main(["imatrix", "--model", str(tiny_model), "--calibration", str(sample_file), "-o", str(out),
               "--ctx", str(CTX), "--chunks", "2", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["format"] == "dat" and res["chunks"] == 2 and res["entries"] == len(NAMES)
    assert ImatrixData.load(out, chunk_size=CTX).chunk_count == 2
    rc = main(["imatrix", "--model", str(tiny_model), "--calibration", str(tmp_path / "missing.txt"),
               "-o", str(tmp_path / "y.gguf")])
    assert rc == 2
    assert "missing.txt" in capsys.readouterr().err


def test_llama_log_lines_reach_logging_and_listeners(tiny_model: Path, text: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from medcal_gui.llama.log import add_line_listener, route_llama_logs

    route_llama_logs()
    route_llama_logs()  # idempotent
    lines: list[str] = []
    remove = add_line_listener(lambda level, line: lines.append(line))
    with caplog.at_level("DEBUG", logger="medcal_gui.llama"):
        compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=1)
    remove()
    assert any("gemma3" in ln for ln in lines)
    assert all("\n" not in ln for ln in lines)
    assert any(r.name == "medcal_gui.llama" and "gemma3" in r.getMessage() for r in caplog.records)
    n = len(lines)
    compute_imatrix(tiny_model, [text], n_ctx=CTX, n_chunks=1)
    assert len(lines) == n  # removed listeners hear nothing
