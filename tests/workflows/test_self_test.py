"""`medcal self-test` and `medcal --version`, unfrozen, through the CLI's main()."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

from medcal_gui import __version__
from medcal_gui.cli.main import main
from medcal_gui.core.errors import MedcalError, ModelError
from medcal_gui.workflows import self_test


@pytest.fixture()
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route tempfile to a folder of our own, to check that the self-test leaves nothing behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_self_test_passes_end_to_end(own_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["self-test"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert rc == 0, out
    assert len(lines) == 1, out
    line = lines[0]
    assert line.startswith("medcal self-test: OK (source install, "), line
    assert re.search(r"qt \d+\.\d+\.\d+ on '\w+'", line), line
    assert re.search(r"resources \d+ variants, \d+ sample file\(s\)", line), line
    assert re.search(r"format [1-9]\d* records", line), line
    assert re.search(r"cpu features ok, (AMX probe not needed|AMX usable|AMX crashes here)", line), line
    assert re.search(r"imatrix [1-4] chunks x 128 tokens, [1-9]\d* entries", line), line
    assert re.search(r"quantize Q4_K_M [\d.]+ [kMG]B from [\d.]+ [kMG]B, \d+ tensors", line), line
    assert f"generate {self_test.GEN_TOKENS} tokens from the Q4_K_M model" in line
    assert list(own_tmp.iterdir()) == [], "the self-test left files behind"


def test_self_test_json_without_qt(own_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["self-test", "--no-qt", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["ok"] is True and doc["frozen"] is False
    assert [s["name"] for s in doc["steps"]] == [name for name, _ in self_test.STEPS]
    assert all(s["ok"] and s["error"] is None for s in doc["steps"])
    assert doc["versions"]["medcal"] == __version__
    assert "Qt" in doc["versions"] and "llama.cpp" in doc["versions"]
    assert list(own_tmp.iterdir()) == []


def test_self_test_failure_is_one_clear_line(own_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def broken_quantize(work: Path) -> str:
        (work / "partial.gguf").write_bytes(b"x")
        raise ModelError("Quantizing failed:\n  llama.cpp reported: no luck")

    steps = [(n, broken_quantize if n == "quantize" else fn) for n, fn in self_test.STEPS if n != "generate"]
    monkeypatch.setattr(self_test, "STEPS", steps)
    rc = main(["self-test", "--no-qt"])
    captured = capsys.readouterr()
    assert rc == 1
    lines = captured.out.splitlines()
    assert len(lines) == 1, captured.out
    assert lines[0].startswith("medcal self-test: FAILED at step 'quantize' (source install, ")
    assert "Quantizing failed: llama.cpp reported: no luck" in lines[0]
    assert "[passed: resources, model, format, cpu, imatrix]" in lines[0]
    assert list(own_tmp.iterdir()) == [], "a failed self-test must still clean up"


def test_unexpected_exception_is_reported_with_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(work: Path) -> str:
        raise ValueError("bad\nthing")

    monkeypatch.setattr(self_test, "STEPS", [("boom", boom)])
    res = self_test.run_self_test()
    assert not res.ok
    assert res.failed is not None and res.failed.name == "boom"
    assert res.failed.traceback and "ValueError" in res.failed.traceback
    assert "ValueError: bad thing" in res.summary_line()
    assert "\n" not in res.summary_line()


def test_keep_leaves_the_work_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(self_test, "STEPS", self_test.STEPS[:3])  # resources, model, format
    keep = tmp_path / "kept"
    assert main(["self-test", "--no-qt", "--keep", str(keep)]) == 0
    assert "format" in capsys.readouterr().out
    assert (keep / "tiny-gemma3-f32.gguf").is_file()
    assert (keep / "calibration.txt").is_file()


def test_missing_cpu_features_fail_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from medcal_gui.llama import cpu_quirks

    monkeypatch.setattr(self_test, "compiled_cpu_features", lambda: ["SSE3", "AVX2", "AVX512", "OPENMP"])
    monkeypatch.setattr(cpu_quirks, "_cpu_flags", lambda: {"pni", "avx2"})
    assert self_test.missing_cpu_features() == ["AVX512"]
    with pytest.raises(MedcalError, match="This CPU lacks AVX512"):
        self_test.step_cpu(tmp_path)
    monkeypatch.setattr(cpu_quirks, "_cpu_flags", lambda: set())  # not Linux: nothing to compare with
    assert self_test.missing_cpu_features() == []


def test_version_lists_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"medcal {__version__}"
    assert re.search(r"^llama-cpp-python: \d+\.\d+\.\d+$", out, re.M), out
    assert re.search(r"^llama\.cpp: libllama \S+ \(ggml \S+", out, re.M), out
    assert re.search(r"^Qt: \d+\.\d+\.\d+ \(PySide6 \d+\.\d+\.\d+\)$", out, re.M), out
    assert re.search(r"^Python: 3\.\d+\.\d+ ", out, re.M), out
    assert re.search(r"^llama\.cpp CPU build: .*\bSSE3\b", out, re.M), out
    assert "build: source install" in out
