from __future__ import annotations

import json
import os
import time
from pathlib import Path

import llama_cpp
import pytest

from medcal_gui.calibrate.tokens import count_tokens, vocab_for
from medcal_gui.cli.main import main
from medcal_gui.core.errors import Cancelled, InputError, ModelError
from medcal_gui.core.jobs import CancelToken, Progress

RECORD = ("<start_of_turn>user\nSummarize: a 67-year-old man with atrial fibrillation and chest pain."
          "<end_of_turn>\n<start_of_turn>model\nAF with chest pain in a 67-year-old man.<end_of_turn>\n")


def _reference_tokens(model: Path, text: str, special: bool = True) -> list[int]:
    """The whole text tokenized in one go, BOS first: what llama-imatrix does."""
    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False, n_ctx=512)
    try:
        return list(llm.tokenize(text.encode(), add_bos=True, special=special))
    finally:
        llm.close()


def test_counts_and_chunks_on_the_tiny_model(tiny_model: Path) -> None:
    text = RECORD * 40
    ref = _reference_tokens(tiny_model, text)
    rep = count_tokens(tiny_model, text, n_ctx=64)
    assert rep.add_bos and ref[0] == 2
    assert rep.tokens == len(ref) and rep.text_tokens == len(ref) - 1
    assert rep.n_chunks == len(ref) // 64
    assert rep.tokens_used == rep.n_chunks * 64
    assert rep.tokens_dropped == len(ref) - rep.n_chunks * 64
    assert rep.tokens_replaced_by_bos == rep.n_chunks - 1
    assert rep.record_format == "chat" and len(rep.records) == 40
    assert len({r.tokens for r in rep.records}) == 1  # identical records, identical counts
    assert sum(r.tokens for r in rep.records) == rep.text_tokens  # splitting at the marker is exact
    assert rep.markers_ok
    assert [(m.token_id, m.in_text, m.as_tokens) for m in rep.markers] == [(4, 80, 80), (5, 80, 80)]
    assert rep.chars_per_token == pytest.approx(len(text) / rep.text_tokens)


def test_markers_without_special_parsing_are_flagged(tiny_model: Path) -> None:
    rep = count_tokens(tiny_model, RECORD * 5, n_ctx=32, parse_special=False)
    assert not rep.markers_ok
    assert [m.as_tokens for m in rep.markers] == [0, 0]
    assert any("tokenized as plain text" in w for w in rep.warnings)
    assert rep.text_tokens == len(_reference_tokens(tiny_model, RECORD * 5, special=False)) - 1


def test_plain_files_are_one_record_each(tiny_model: Path, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("The patient has chest pain and a history of hypertension.\n" * 20, encoding="utf-8")
    b.write_text("Blood pressure was normal", encoding="utf-8")
    rep = count_tokens(tiny_model, [a, b], n_ctx=16)
    assert rep.record_format == "plain"
    assert [(r.source, r.index) for r in rep.records] == [(str(a), 0), (str(b), 0)]
    joined = a.read_text() + b.read_text()
    assert rep.tokens == len(_reference_tokens(tiny_model, joined))
    assert rep.chars == len(joined)


def test_records_are_attributed_to_their_files(tiny_model: Path, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text(RECORD * 3, encoding="utf-8")
    b.write_text(RECORD * 2, encoding="utf-8")
    rep = count_tokens(tiny_model, [a, b], n_ctx=32)
    assert [(Path(r.source).name, r.index) for r in rep.records] == [
        ("a.txt", 0), ("a.txt", 1), ("a.txt", 2), ("b.txt", 0), ("b.txt", 1)]


def test_too_short_text_warns(tiny_model: Path) -> None:
    rep = count_tokens(tiny_model, RECORD, n_ctx=512)
    assert rep.n_chunks == 0 and rep.tokens_dropped == rep.tokens
    assert any("not enough for one chunk" in w for w in rep.warnings)


def test_bad_inputs(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        count_tokens(tiny_model, tmp_path / "missing.txt")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    with pytest.raises(ModelError, match="bad.gguf"):
        count_tokens(bad, "some text")


def test_cancel(tiny_model: Path) -> None:
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.unit == "records" and p.done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        count_tokens(tiny_model, RECORD * 10, progress=progress, cancel=token)


@pytest.mark.slow
def test_demo_model_counts_match_llama_cpp(demo_model: Path) -> None:
    text = RECORD * 60
    ref = _reference_tokens(demo_model, text)
    rep = count_tokens(demo_model, text, n_ctx=512)
    assert rep.tokens == len(ref)
    assert rep.n_chunks == len(ref) // 512
    assert [(m.token_id, m.as_tokens) for m in rep.markers] == [(105, 120), (106, 120)]
    assert 3.0 < rep.chars_per_token < 6.0


def test_cli_tokens_json(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "cal.txt"
    f.write_text(RECORD * 8, encoding="utf-8")
    assert main(["tokens", str(f), "--model", str(tiny_model), "--ctx", "32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_ctx"] == 32 and len(data["records"]) == 8 and data["markers_ok"] is True


def test_gemma_template_folds_the_system_prompt_into_the_first_turn() -> None:
    from medcal_gui.chat.chat_template import render_gemma

    text = render_gemma([{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "},
                         {"role": "assistant", "content": "Hello"}], add_generation_prompt=True)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                    "<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n")
    with pytest.raises(InputError, match="alternate"):
        render_gemma([{"role": "assistant", "content": "x"}])


def test_the_vocabulary_is_loaded_once_per_model_file(tiny_model: Path, tmp_path: Path) -> None:
    """Counting file after file (the Narratives pane does, on every load) must not reload the vocabulary:
    llama.cpp logs its vocabulary on every load, so its log shows each load."""
    import shutil

    from medcal_gui.llama.log import add_line_listener

    model = shutil.copy(tiny_model, tmp_path / "m.gguf")
    lines: list[str] = []
    remove = add_line_listener(lambda _level, line: lines.append(line))
    try:
        first = count_tokens(model, ["the patient has chest pain"])
        loads_first = sum("vocab_only" in x or "print_info: n_vocab" in x for x in lines)
        n_first = len(lines)
        again = [count_tokens(model, [f"record {i}: the patient has chest pain"]) for i in range(3)]
        assert len(lines) == n_first, "llama.cpp logged again: the vocabulary was reloaded"
        assert vocab_for(Path(model)) is vocab_for(Path(model))
        # a changed file is a new vocabulary
        before = vocab_for(Path(model))
        os.utime(model, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert vocab_for(Path(model)) is not before
    finally:
        remove()
    assert loads_first >= 1
    assert first.text_tokens > 0 and all(r.text_tokens > first.text_tokens for r in again)
