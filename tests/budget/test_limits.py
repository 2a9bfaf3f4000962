"""Limits checked before a step starts: a fake small free-memory or free-disk figure makes a real step refuse."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from medcal_gui.budget.limits import (
    LimitError,
    chat_needs,
    check,
    describe_needs,
    eval_needs,
    free_disk,
    free_memory,
    imatrix_needs,
    model_shape,
    quantize_needs,
)
from medcal_gui.core.errors import MedcalError, ModelError
from medcal_gui.core.units import format_bytes

TEXT = ("<start_of_turn>user\nThe patient has chest pain and atrial fibrillation.<end_of_turn>\n"
        "<start_of_turn>model\nECG, troponin, anticoagulation per CHA2DS2-VASc.<end_of_turn>\n") * 60


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_env_overrides_of_free_memory_and_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "3G")
    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "40M")
    assert free_memory() == 3_000_000_000
    assert free_disk(tmp_path / "not" / "yet") == 40_000_000
    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "2GiB")  # binary, as everywhere else (it was read as 2e9 here)
    assert free_disk(tmp_path) == 2 << 30
    for bad in ("lots", "inf", "nan", "1e400"):
        monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", bad)
        with pytest.raises(LimitError, match="MEDCAL_FAKE_FREE_MEM"):
            free_memory()


def test_real_free_memory_is_meminfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDCAL_FAKE_FREE_MEM", raising=False)
    avail = next(int(ln.split()[1]) * 1024 for ln in Path("/proc/meminfo").read_text().splitlines()
                 if ln.startswith("MemAvailable:"))
    assert abs(free_memory() - avail) < 0.2 * avail + 200e6  # others use the machine meanwhile


def test_model_shape_reads_the_gguf(tiny_model: Path, demo_model: Path) -> None:
    import gguf

    for path in (tiny_model, demo_model):
        s = model_shape(path)
        r = gguf.GGUFReader(str(path))

        def f(key: str, r: gguf.GGUFReader = r) -> int:
            return int(r.fields[f"gemma3.{key}"].contents())

        assert (s.n_layer, s.n_embd, s.n_head_kv, s.head_dim, s.n_ff) == (
            f("block_count"), f("embedding_length"), f("attention.head_count_kv"), f("attention.key_length"),
            f("feed_forward_length"))
        assert s.n_vocab == len(r.fields["tokenizer.ggml.tokens"].contents())
        assert s.file_bytes == path.stat().st_size
    assert model_shape(demo_model).n_vocab == 262_144
    assert model_shape(demo_model).kv_bytes(512) == 2 * 18 * 512 * 1 * 256 * 2


def test_a_models_shape_is_read_once_per_file_version(tiny_model: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape is remembered per file version in the user's cache (walking a 262k-token vocabulary took
    45 ms of every quantize): a later process reads the memo, a changed file is read again, a broken memo
    only means reading again."""
    from medcal_gui.budget import limits

    monkeypatch.setenv("MEDCAL_CACHE", str(tmp_path / "cache"))
    m = tmp_path / "m.gguf"
    shutil.copy(tiny_model, m)
    reads: list[str] = []
    real = limits._shape_read

    def counted(path: str, size: int) -> limits.ModelShape:
        reads.append(path)
        return real(path, size)

    monkeypatch.setattr(limits, "_shape_read", counted)
    limits._shape_cached.cache_clear()
    first = model_shape(m)
    memo = json.loads((tmp_path / "cache" / "model-shapes.json").read_text())
    assert list(memo.values()) == [{k: v for k, v in asdict(first).items() if k != "path"}]
    limits._shape_cached.cache_clear()  # as a new process starts
    assert model_shape(m) == first and reads == [str(m)]
    st = m.stat()
    os.utime(m, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed
    limits._shape_cached.cache_clear()
    assert model_shape(m) == first and reads == [str(m)] * 2
    (tmp_path / "cache" / "model-shapes.json").write_text("{not json")
    limits._shape_cached.cache_clear()
    assert model_shape(m) == first and reads == [str(m)] * 3


def test_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        model_shape(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(ModelError, match="cannot be read"):
        model_shape(bad)


def test_estimates_cover_the_demo_models_weights_and_logits(demo_model: Path, tmp_path: Path) -> None:
    size = demo_model.stat().st_size
    im = imatrix_needs(demo_model, 512)
    logits = 512 * 262_144 * 4
    assert size + logits < im.memory < size + 4 * logits
    ev = eval_needs(demo_model, [demo_model], 512, TEXT, None, cache_folder=tmp_path)
    assert ev.memory > im.memory  # two logits copies and the log-probabilities
    assert ev.disk > 0 and ev.folder is not None
    q = quantize_needs(demo_model, demo_model.with_name("x.gguf"), 4.5)
    # the largest tensor (token_embd, 262,144 x 640) read as F16, widened to F32 and quantized
    assert q.memory >= 262_144 * 640 * (2 + 4 + 1)
    assert 0 < q.disk < size
    ch = chat_needs(demo_model, 4096)
    assert ch.memory > size + model_shape(demo_model).kv_bytes(4096)


def test_message_says_what_is_needed_and_what_is_free(demo_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "600M")
    needs = imatrix_needs(demo_model, 512)
    with pytest.raises(LimitError) as info:
        check(needs)
    msg = info.value.message
    assert msg.startswith(f"The importance matrix needs about {format_bytes(needs.memory, rough=True)} of free memory")
    assert "; 600 MB are free" in msg and "\n" not in msg
    assert isinstance(info.value, MedcalError) and info.value.exit_code == 2
    line = describe_needs(needs)
    assert line.startswith(f"needs about {format_bytes(needs.memory, rough=True)} of memory (600 MB free, too little)")
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "64G")
    assert check(needs) is needs
    assert "too little" not in describe_needs(needs)


def test_imatrix_refuses_before_loading(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    out = tmp_path / "out"
    with pytest.raises(LimitError, match=r"needs about .* of free memory.*50 MB are free"):
        compute_imatrix(tiny_model, [TEXT], n_ctx=64, out=out / "imatrix.gguf")
    assert _leftovers(out) == []
    monkeypatch.setenv("MEDCAL_NO_LIMITS", "1")  # the same call runs when the check is off
    res = compute_imatrix(tiny_model, [TEXT], n_ctx=64, n_chunks=1, out=out / "imatrix.gguf")
    assert res.entries > 0


def test_quantize_refuses_without_disk(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.quantize.quantize import quantize_model

    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "1K")
    with pytest.raises(LimitError, match=r"Quantizing needs about .* of free disk in .*; 0 MB are free"):
        quantize_model(tiny_model, tmp_path / "q.gguf", "Q8_0")
    assert _leftovers(tmp_path) == []
    monkeypatch.delenv("MEDCAL_FAKE_FREE_DISK")
    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    with pytest.raises(LimitError, match="of free memory"):
        quantize_model(tiny_model, tmp_path / "q.gguf", "Q8_0")
    assert _leftovers(tmp_path) == []
    # a dry run loads no tensor and writes nothing: it is not held back
    assert quantize_model(tiny_model, tmp_path / "q.gguf", "Q8_0", dry_run=True).output_bytes > 0


def test_quantize_bound_covers_an_f32_output(tiny_model: Path, demo_model: Path, tmp_path: Path) -> None:
    """The bound that lets a real run skip the dry run is above the largest file llama.cpp writes (F32)."""
    from medcal_gui.quantize.quantize import quantize_model

    f32 = quantize_model(tiny_model, tmp_path / "f32.gguf", "F32")
    bound = model_shape(tiny_model).float32_bytes()
    assert bound is not None and f32.output_bytes <= bound < f32.output_bytes + 2 * 1024 * 1024
    demo = model_shape(demo_model)
    assert demo.n_tensors == 236 and demo.n_elements == 268_098_176
    assert demo.float32_bytes() == demo.data_start + 4 * 268_098_176 + 32 * 236 + (1 << 20)


def test_quantize_checks_the_disk_with_llama_cpp_estimate_when_room_is_short(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for even an F32 output the real run skips the dry run; with less, the dry run's exact size
    decides: a folder that fits the quant but not the bound still gets it, one that does not is refused."""
    from medcal_gui.core.jobs import Progress
    from medcal_gui.quantize.quantize import quantize_model

    exact = quantize_model(tiny_model, tmp_path / "q.gguf", "Q8_0", dry_run=True).output_bytes
    bound = model_shape(tiny_model).float32_bytes()
    assert bound is not None and exact * 1.2 < bound

    def run(name: str) -> tuple[int, set[str]]:
        stages: set[str] = set()

        def on_progress(p: Progress) -> None:
            stages.add(p.stage)

        res = quantize_model(tiny_model, tmp_path / name, "Q8_0", progress=on_progress)
        return res.output_bytes, stages

    size, stages = run("roomy.gguf")
    assert "quantize (size estimate)" not in stages and "quantize" in stages
    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", str(int(exact * 1.2)))
    size_short, stages = run("short.gguf")
    assert "quantize (size estimate)" in stages
    assert size_short == size and abs(size - exact) / size < 0.03
    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", str(int(exact * 0.9)))
    with pytest.raises(LimitError, match=rf"Quantizing needs about {exact / 1e6:.0f} MB of free disk"):
        run("full.gguf")
    assert not (tmp_path / "full.gguf").exists()


def test_eval_refuses_with_little_memory(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.evaluate.evaluate import evaluate

    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    with pytest.raises(LimitError, match="The evaluation needs about"):
        evaluate(tiny_model, [tiny_model], TEXT, n_ctx=64, use_cache=False)


def test_eval_refuses_when_the_cache_has_no_room(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.evaluate.evaluate import evaluate

    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "1K")
    with pytest.raises(LimitError, match="evaluation cache"):
        evaluate(tiny_model, [tiny_model], TEXT, n_ctx=64, use_cache=False)


def test_chat_refuses_with_little_memory(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.chat.chat import ChatSession

    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    with pytest.raises(LimitError, match="Chat needs about"):
        ChatSession(tiny_model, n_ctx=256)


def test_cli_prints_the_message(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main

    monkeypatch.setenv("MEDCAL_FAKE_FREE_MEM", "50M")
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    rc = main(["imatrix", "-m", str(tiny_model), "-f", str(tmp_path / "t.txt"), "-o", str(tmp_path / "i.gguf")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "needs about" in err and "50 MB are free" in err and "Traceback" not in err
    assert not (tmp_path / "i.gguf").exists()
