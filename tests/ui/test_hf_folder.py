"""Pane 3's model picker takes a Hugging Face folder, converts it (asking first) and chooses the GGUF."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medcal_gui.ui import dialogs
from medcal_gui.ui.model_picker import ModelPicker
from medcal_gui.ui.workbench import Workbench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "convert"))
import hf_fixture  # noqa: E402  (the converter tests' tiny Hugging Face checkpoint maker)

# the folder is written without torch: the GUI tests' process never loads it (the converter does not need it)
pytestmark = pytest.mark.skipif(hf_fixture.missing_reason(("sentencepiece",)) is not None,
                                reason=str(hf_fixture.missing_reason(("sentencepiece",))))


def test_hf_folder_is_converted_then_chosen(qtbot, bench: Workbench, tmp_path: Path,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    hf_dir = hf_fixture.make_plain_causal(tmp_path / "tiny-gemma3-hf", hf_fixture.train_sentencepiece())
    questions: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda _p, title, text: questions.append(text) or True)
    picker = ModelPicker(bench)
    qtbot.addWidget(picker)
    with qtbot.waitSignal(picker.chosen, timeout=60000) as sig:
        picker._choose(hf_dir)
    out = sig.args[0]
    assert out == tmp_path / "tiny-gemma3-hf-f16.gguf"
    assert out.is_file() and out.read_bytes()[:4] == b"GGUF"
    assert "Hugging Face model folder" in questions[0]


def test_a_plain_folder_is_refused_in_plain_words(qtbot, bench: Workbench, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  shown_errors) -> None:
    picker = ModelPicker(bench)
    qtbot.addWidget(picker)
    picker._choose(tmp_path)
    assert len(shown_errors) == 1 and "not a Hugging Face model" in str(shown_errors[0][0])
