"""Quantization through llama.cpp in a child process, on the tiny real model."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import pytest

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.cli.main import main
from medcal_gui.core.errors import Cancelled, InputError, ModelError, OutputError
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.llama.cpu_quirks import install_llama_defaults
from medcal_gui.quantize.quantize import quantize_model


@pytest.fixture(scope="module")
def imatrix_file(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imat") / "tiny.imatrix.gguf"
    compute_imatrix(tiny_model, [sample_file], n_ctx=128, n_chunks=4, out=out)
    return out


def _generate(path: Path) -> int:
    install_llama_defaults()
    llm = llama_cpp.Llama(str(path), n_ctx=128, verbose=False)
    out: Any = llm("The patient has chest pain", max_tokens=4, temperature=0.0)
    return int(out["usage"]["completion_tokens"])


def _fields(path: Path) -> dict[str, object]:
    r = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}


@pytest.mark.parametrize("qtype,expect", [("Q8_0", "Q8_0"), ("Q4_K_M", "Q4_K"),
                                          pytest.param("IQ3_XXS", "IQ3_XXS", marks=pytest.mark.slow)])
def test_quantized_output_loads_generates_and_records_provenance(
        tiny_model: Path, imatrix_file: Path, tmp_path: Path, qtype: str, expect: str) -> None:
    out = tmp_path / f"tiny-{qtype}.gguf"
    seen: list[Progress] = []
    res = quantize_model(tiny_model, out, qtype, imatrix=imatrix_file, progress=seen.append,
                         provenance={"calibration.sha256": "ab" * 32, "calibration.variant": "demo"})
    assert res.out == out and out.stat().st_size == res.output_bytes
    assert res.output_bytes < tiny_model.stat().st_size / 2
    assert res.tensors == 28
    tensor_steps = [p for p in seen if p.stage == "quantize" and p.unit == "tensors"]
    assert [p.done for p in tensor_steps][:28] == list(range(1, 29))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (tmp_path / f"tiny-{qtype}.gguf.sha256").read_text() == f"{digest}  {out.name}\n"
    manifest = json.loads((tmp_path / f"tiny-{qtype}.gguf.manifest.json").read_text())
    assert manifest["output"]["sha256"] == digest
    assert manifest["input"]["sha256"] == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert manifest["imatrix"]["sha256"] == hashlib.sha256(imatrix_file.read_bytes()).hexdigest()
    assert manifest["versions"]["llama_cpp_python"] == llama_cpp.__version__
    f = _fields(out)
    assert f["quantize.imatrix.file"] == str(imatrix_file)
    assert f["quantize.imatrix.entries_count"] == 14
    assert f["quantize.imatrix.chunks_count"] == 4
    assert f["quantize.imatrix.dataset"] == manifest["imatrix"]["datasets"][0]
    assert f["medcal.calibration.sha256"] == "ab" * 32 and f["medcal.calibration.variant"] == "demo"
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert types["blk.0.ffn_gate.weight"] == expect
    assert _generate(out) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name, out.name + ".sha256", out.name + ".manifest.json"])


def test_imatrix_changes_the_low_bit_result(tiny_model: Path, imatrix_file: Path, tmp_path: Path) -> None:
    a = quantize_model(tiny_model, tmp_path / "a.gguf", "Q3_K_S", imatrix=imatrix_file)
    b = quantize_model(tiny_model, tmp_path / "b.gguf", "Q3_K_S", imatrix=None)
    assert a.sha256 != b.sha256
    assert "quantize.imatrix.file" not in _fields(tmp_path / "b.gguf")


def test_types_needing_an_imatrix_are_refused_without_one(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="IQ2_XXS requires an importance matrix"):
        quantize_model(tiny_model, tmp_path / "x.gguf", "IQ2_XXS", imatrix=None)
    assert list(tmp_path.iterdir()) == []


def test_types_ignoring_the_imatrix_say_so(tiny_model: Path, imatrix_file: Path, tmp_path: Path) -> None:
    res = quantize_model(tiny_model, tmp_path / "x.gguf", "Q8_0", imatrix=imatrix_file, dry_run=True)
    assert any("ignores the importance matrix" in w for w in res.warnings)


def test_dry_run_writes_nothing_and_estimates_the_size(tiny_model: Path, tmp_path: Path) -> None:
    dry = quantize_model(tiny_model, tmp_path / "x.gguf", "Q4_K_M", dry_run=True)
    assert list(tmp_path.iterdir()) == []
    real = quantize_model(tiny_model, tmp_path / "x.gguf", "Q4_K_M")
    assert dry.dry_run and dry.out is None
    assert abs(dry.output_bytes - real.output_bytes) / real.output_bytes < 0.03


def test_output_over_input_is_refused(tiny_model: Path, imatrix_file: Path) -> None:
    before = tiny_model.read_bytes()
    with pytest.raises(OutputError, match="never overwrites"):
        quantize_model(tiny_model, tiny_model, "Q8_0")
    with pytest.raises(OutputError):
        quantize_model(tiny_model, imatrix_file, "Q4_K_M", imatrix=imatrix_file)
    assert tiny_model.read_bytes() == before


def test_requantizing_needs_permission(tiny_model: Path, tmp_path: Path) -> None:
    q8 = quantize_model(tiny_model, tmp_path / "q8.gguf", "Q8_0").out
    assert q8 is not None
    with pytest.raises(ModelError, match="already quantized"):
        quantize_model(q8, tmp_path / "q4.gguf", "Q4_K_M")
    assert not (tmp_path / "q4.gguf").exists()
    res = quantize_model(q8, tmp_path / "q4.gguf", "Q4_K_M", allow_requantize=True)
    assert res.output_bytes > 0


def test_cancel_stops_the_child_and_removes_the_partial_file(tiny_model: Path, tmp_path: Path) -> None:
    token = CancelToken()

    def on_progress(p: Progress) -> None:
        if p.stage == "quantize" and p.unit == "tensors" and p.done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        quantize_model(tiny_model, tmp_path / "x.gguf", "Q4_K_M", progress=on_progress, cancel=token)
    assert token.cancelled_at is not None
    assert time.monotonic() - token.cancelled_at < 2.0 + 1.0  # terminate + join, with slack for CI
    assert list(tmp_path.iterdir()) == []


def test_unknown_type_and_missing_model_are_user_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Unknown quantization type"):
        quantize_model(tiny_model, tmp_path / "x.gguf", "Q4_K_XXL")
    with pytest.raises(InputError, match="^--output-tensor-type: 'q9_9' is not a ggml tensor type"):
        quantize_model(tiny_model, tmp_path / "x.gguf", "Q4_K_M", output_tensor_type="q9_9")
    with pytest.raises(ModelError, match="does not exist"):
        quantize_model(tmp_path / "nope.gguf", tmp_path / "x.gguf", "Q4_K_M")


def test_damaged_model_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="Cannot quantize"):
        quantize_model(bad, tmp_path / "x.gguf", "Q4_K_M")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gguf"]


def test_cli_round_trip(tiny_model: Path, imatrix_file: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.gguf"
    rc = main(["quantize", "--model", str(tiny_model), "--type", "q4_k_m", "-o", str(out),
               "--imatrix", str(imatrix_file), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["qtype"] == "Q4_K_M" and res["out"] == str(out) and res["imatrix_entries"] == 14
    assert out.exists()
    rc = main(["quantize", "--model", str(tiny_model), "--type", "IQ1_S", "-o", str(tmp_path / "y.gguf")])
    assert rc == 2
    assert "requires an importance matrix" in capsys.readouterr().err


def test_iq3_xxs_without_imatrix_is_refused_when_llama_cpp_would_need_one(tiny_model: Path,
                                                                           tmp_path: Path) -> None:
    # The tiny model's rows are 256 wide, so its matrices really take IQ3_XXS: llama.cpp refuses before it
    # opens the output (the real run, where the disk has room to skip the dry run), and the refusal is explained.
    with pytest.raises(InputError, match="IQ3_XXS requires an importance matrix"):
        quantize_model(tiny_model, tmp_path / "x.gguf", "IQ3_XXS", imatrix=None)
    assert list(tmp_path.iterdir()) == []
