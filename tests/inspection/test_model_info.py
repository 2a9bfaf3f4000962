from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.cli.main import main
from medcal_gui.core.errors import ModelError
from medcal_gui.gguf_files.demo_model import demo_source_path
from medcal_gui.gguf_files.gguf_check import check_gguf
from medcal_gui.inspection.model_info import inspect_model


@pytest.fixture(scope="module")
def tiny_bytes(tiny_model: Path) -> bytes:
    return tiny_model.read_bytes()


def _data_offset(path: Path) -> int:
    from medcal_gui.gguf_files.gguf_check import open_gguf

    return int(open_gguf(path).data_offset)


def _malformed(case: str, tiny_bytes: bytes, off: int) -> bytes:
    return {
        "empty": b"",
        "short_preamble": tiny_bytes[:12],
        "truncated_header": tiny_bytes[: off // 2],
        "truncated_data": tiny_bytes[: off + (len(tiny_bytes) - off) // 2],
        "last_bytes_missing": tiny_bytes[:-7],
        "not_gguf": b"this is a text file, not a model\n" * 4,
        "safetensors": (64).to_bytes(8, "little") + b'{"__metadata__": {}}' + b" " * 60,
        "bad_version": tiny_bytes[:4] + (9).to_bytes(4, "little") + tiny_bytes[8:],
        "absurd_tensor_count": tiny_bytes[:8] + (10**12).to_bytes(8, "little") + tiny_bytes[16:],
        "absurd_kv_count": tiny_bytes[:16] + (10**9).to_bytes(8, "little") + tiny_bytes[24:],
        "inflated_kv_count": tiny_bytes[:16] + (90_000).to_bytes(8, "little") + tiny_bytes[24:],
    }[case]


@pytest.mark.parametrize("case, expected", [
    ("empty", "is empty"),
    ("short_preamble", "ends inside its header"),
    ("truncated_header", "cut short"),
    ("truncated_data", "tensor data ends early"),
    ("last_bytes_missing", "tensor data ends early"),
    ("not_gguf", "is not a GGUF model"),
    ("safetensors", "safetensors"),
    ("bad_version", "GGUF version 9"),
    ("absurd_tensor_count", "claims 1000000000000 tensors"),
    ("absurd_kv_count", "1000000000 metadata entries"),
    ("inflated_kv_count", "corrupt or cut short"),
])
def test_malformed_files_are_refused_naming_the_file(tiny_model: Path, tiny_bytes: bytes, tmp_path: Path,
                                                     case: str, expected: str) -> None:
    off = _data_offset(tiny_model)
    data = _malformed(case, tiny_bytes, off)
    bad = tmp_path / f"{case}.gguf"
    bad.write_bytes(data)
    with pytest.raises(ModelError) as exc:
        check_gguf(bad)
    assert str(bad) in exc.value.message
    assert expected in exc.value.message
    with pytest.raises(ModelError):
        inspect_model(bad)


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        check_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelError, match="is a folder"):
        check_gguf(tmp_path)


MALFORMED = ["empty", "short_preamble", "truncated_header", "truncated_data", "last_bytes_missing", "not_gguf",
             "safetensors", "bad_version", "absurd_tensor_count", "absurd_kv_count", "inflated_kv_count"]


@pytest.mark.parametrize("case", MALFORMED)
def test_llama_cpp_agrees_the_malformed_files_are_unloadable(tiny_model: Path, tiny_bytes: bytes, tmp_path: Path,
                                                             case: str) -> None:
    """The pre-check refuses what llama.cpp would fail on, and accepts what it loads: for every malformed
    file, both refuse it; the intact model, both accept."""
    import llama_cpp

    bad = tmp_path / f"{case}.gguf"
    bad.write_bytes(_malformed(case, tiny_bytes, _data_offset(tiny_model)))
    with pytest.raises(ModelError):
        check_gguf(bad)
    with pytest.raises(ValueError, match="Failed to load model"):
        llama_cpp.Llama(str(bad), n_ctx=32, verbose=False)
    check_gguf(tiny_model)
    llm = llama_cpp.Llama(str(tiny_model), n_ctx=32, verbose=False)
    assert llm.n_vocab() == inspect_model(tiny_model).vocab_size
    llm.close()


def test_inspect_tiny_model(tiny_model: Path) -> None:
    check_gguf(tiny_model)
    info = inspect_model(tiny_model)
    assert info.architecture == "gemma3"
    assert info.file_type == "F32"
    assert info.is_quantized is False
    assert info.tensor_count == sum(info.tensor_types.values())
    assert info.parameter_count > 0
    assert info.size_bytes == tiny_model.stat().st_size
    assert info.bos_id == 2 and info.bos_text == "<bos>"
    assert info.eos_id == 1 and info.eos_text == "<eos>"
    assert info.turn_tokens_ok
    assert [t.token_type for t in info.turn_tokens] == [3, 3]
    assert info.warnings == []
    json.dumps(info.to_json())


@pytest.mark.slow
def test_inspect_demo_model(demo_model: Path) -> None:
    info = inspect_model(demo_model)
    assert info.architecture == "gemma3"
    assert info.vocab_size == 262144
    assert info.file_type == "F16" and info.file_type_id == 1
    assert info.tensor_types == {"F16": 127, "F32": 109}
    assert 260e6 < info.parameter_count < 275e6
    assert info.parameter_count == 268_098_176
    assert info.context_length == 32768
    assert [(t.text, t.id, t.is_control) for t in info.turn_tokens] == [
        ("<start_of_turn>", 105, True), ("<end_of_turn>", 106, True)]
    assert info.has_chat_template is False
    assert any("medcal supplies Gemma's template" in n for n in info.notes)
    assert info.is_quantized is False and info.warnings == []
    assert info.bos_id == 2 and info.eos_id == 1 and info.add_bos is True


@pytest.mark.slow
def test_inspect_warns_on_the_already_quantized_source(demo_model: Path) -> None:
    info = inspect_model(demo_source_path(demo_model.parent))
    assert info.is_quantized and info.file_type == "Q4_K_M"
    assert any("already quantized (Q4_K_M)" in w and "F16 or BF16 original" in w for w in info.warnings)


def test_inspect_warns_when_turn_markers_are_not_control_tokens(tmp_path: Path) -> None:
    import gguf

    from medcal_gui.llama.tiny_model import write_tiny_gemma3
    src = write_tiny_gemma3(tmp_path / "tiny.gguf")
    reader = gguf.GGUFReader(src, "r+")
    types = reader.fields["tokenizer.ggml.token_type"]
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    # flip <start_of_turn> to a NORMAL token in place
    types.parts[types.data[tokens.index("<start_of_turn>")]][0] = 1
    reader.data.flush()
    del reader
    info = inspect_model(src)
    assert not info.turn_tokens_ok
    assert any("tokenized as plain text" in w for w in info.warnings)


def test_cli_inspect_text_and_json(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "Architecture:     gemma3" in out and "File type:        F32" in out
    assert main(["inspect", str(tiny_model), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["architecture"] == "gemma3" and data["turn_tokens_ok"] is True


def test_cli_inspect_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"")
    assert main(["inspect", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
