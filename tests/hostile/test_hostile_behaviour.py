"""Hostile and unlucky inputs to the behaviour checks (`mcq`, `agree`, and `ladder --questions`, which reads the
same question files), through the real command line: files that are not files, JSON nested 100,000 deep,
rows of the wrong shape, huge rows, model paths that are not model files, a hostile chat template inside a
GGUF, outputs that cannot be written, and valid JSON Lines holding raw U+2028 / U+2029.

Every refusal is one line naming the file (and line), what was found and what to write; nothing hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcal_gui.behaviour.mcq import load_questions

GOOD_Q = {"id": "q1", "question": "Which rhythm is irregularly irregular?",
          "options": {"A": "Atrial fibrillation", "B": "Sinus rhythm"}, "answer": "A"}
GOOD_P = {"id": "p1", "prompt": "Summarise: 67 y/o, chest pain."}
Q_ROW = '{"id": "q1", "question": "...", "options": {"A": "...", "B": "..."}, "answer": "A"}'
P_ROW = '{"id": "p1", "prompt": "..."} or {"id": "p1", "messages": [{"role": "user", "content": "..."}]}'
HOW_AB = "write the right option's letter (A, B) or its index (0 to 1)"
DEEP = "[" * 100_000 + "]" * 100_000


def medcal(*args: object, timeout: float = 60) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "medcal_gui", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)  # a hang (a FIFO waiting for a writer) fails here
    return r.returncode, r.stdout, r.stderr


def fails(cmd: str, *args: object, rc: int = 2) -> str:
    """The one line `medcal CMD ...` says when it refuses; nothing else on stderr (no progress: no work)."""
    code, out, err = medcal(cmd, *args)
    assert code == rc, (code, out, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medcal {cmd}: error: "), err
    return lines[0].removeprefix(f"medcal {cmd}: error: ")


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# -- class 5: inputs that are not files ----------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_fifo_device_and_folder_question_files_are_refused_without_reading(tmp_path: Path, tiny_model: Path) -> None:
    fifo = tmp_path / "questions.jsonl"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    t0 = time.monotonic()
    assert fails("mcq", "-m", tiny_model, "--questions", fifo) == (
        f"The question file {fifo} is a named pipe (FIFO), not a file: give a text file.")
    assert fails("mcq", "-m", tiny_model, "--questions", "/dev/zero") == (
        "The question file /dev/zero is a device, not a file: give a text file.")
    assert fails("mcq", "-m", tiny_model, "--questions", zero) == (
        f"The question file {zero} is a device, not a file: give a text file.")
    assert fails("mcq", "-m", tiny_model, "--questions", folder) == (
        f"The question file {folder} is a folder, not a file: give a text file.")
    # ladder reads the same question files, before any of its work: the folder is not even created
    out = tmp_path / "ladder-out"
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("Held-out narrative: sinus rhythm at 72 bpm.\n", encoding="utf-8")
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("Calibration narrative: atrial fibrillation at 130 bpm.\n", encoding="utf-8")
    assert fails("ladder", "-m", tiny_model, "--heldout", heldout, "--calibration", calibration, "--types", "Q4_K_M",
                 "--questions", fifo, "-d", out) == (
        f"The question file {fifo} is a named pipe (FIFO), not a file: give a text file.")
    assert not out.exists()
    assert time.monotonic() - t0 < 60


@pytest.mark.timeout(120)
def test_fifo_and_device_prompt_files_are_refused_without_reading(tmp_path: Path, tiny_model: Path) -> None:
    fifo = tmp_path / "prompts.jsonl"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    m = tiny_model
    assert fails("agree", "-b", m, "-m", m, "-p", fifo) == (
        f"The prompt file {fifo} is a named pipe (FIFO), not a file: give a text file.")
    assert fails("agree", "-b", m, "-m", m, "-p", zero) == (
        f"The prompt file {zero} is a device, not a file: give a text file.")


@pytest.mark.timeout(120)
def test_model_paths_that_are_not_model_files_are_named_before_any_work(tmp_path: Path, tiny_model: Path) -> None:
    """A FIFO model would block llama.cpp's load until a writer came; a folder or /dev/zero was reported as
    "does not exist". The second model is checked before the first one's work starts."""
    q = write_jsonl(tmp_path / "q.jsonl", [GOOD_Q])
    p = write_jsonl(tmp_path / "p.jsonl", [GOOD_P])
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    broken = tmp_path / "broken.gguf"
    broken.symlink_to(tmp_path / "gone.gguf")
    assert fails("mcq", "-m", tiny_model, "-m", fifo, "--questions", q) == (
        f"The model file {fifo} is a named pipe (FIFO), not a file: give a .gguf model file.")
    assert fails("mcq", "-m", folder, "--questions", q) == (
        f"The model path {folder} is a folder, not a model file. Give the .gguf file inside it.")
    assert fails("mcq", "-m", "/dev/zero", "--questions", q) == (
        "The model file /dev/zero is a device, not a file: give a .gguf model file.")
    assert fails("agree", "-b", tiny_model, "-m", broken, "-p", p) == (
        f"The model file {broken} is a symbolic link to {tmp_path / 'gone.gguf'}, which does not exist.")
    assert fails("agree", "-b", fifo, "-m", tiny_model, "-p", p) == (
        f"The model file {fifo} is a named pipe (FIFO), not a file: give a .gguf model file.")


# -- class 6: deep JSON and rows of the wrong shape ------------------------------------------------------------

def test_json_nested_100000_deep_is_one_line_at_its_line(tmp_path: Path, tiny_model: Path) -> None:
    q = write_jsonl(tmp_path / "q.jsonl", [GOOD_Q, DEEP])
    assert fails("mcq", "-m", tiny_model, "--questions", q) == (
        f"{q}, line 2: the line is JSON nested too deeply to read; flatten it.")
    p = write_jsonl(tmp_path / "p.jsonl", [GOOD_P, '{"id": "p2", "prompt": ' + DEEP + "}"])
    assert fails("agree", "-b", tiny_model, "-m", tiny_model, "-p", p) == (
        f"{p}, line 2: the line is JSON nested too deeply to read; flatten it.")


def _q(**changes: object) -> dict[str, object]:
    row = {**GOOD_Q, "id": "q2", **changes}
    return {k: v for k, v in row.items() if v is not ...}


@pytest.mark.parametrize(("row", "message"), [
    ([1, 2], f"the line holds a list; each line must be one JSON object such as {Q_ROW}."),
    (_q(options="A or B"), 'the options are a text; write them as {"A": "...", "B": "..."} or as a list '
                           '["...", "..."].'),
    (_q(options=...), 'the options are missing; write them as {"A": "...", "B": "..."} or as a list '
                      '["...", "..."].'),
    (_q(options=["x", "y"], answer=2), f"the answer index 2 is not among the 2 options (0-based); {HOW_AB}."),
    (_q(answer=True), f"the answer is true/false; {HOW_AB}."),
    (_q(answer=["A"]), f"the answer is a list; {HOW_AB}."),
    (_q(answer="E"), f"the answer 'E' is not among the options (A, B); {HOW_AB}."),
    (_q(question=42), 'the question is a number, not a text; write "question": "Which rhythm is irregularly '
                      'irregular?".'),
    (_q(question=...), 'the question is missing; write "question": "Which rhythm is irregularly irregular?".'),
    (_q(options={"A": {"text": "x"}, "B": "y"}), 'option A is an object, not a text; write each option as a '
                                                 'text, e.g. "A": "Atrial fibrillation".'),
    (_q(options=["x", None]), 'option B is null, not a text; write each option as a text, e.g. '
                              '"B": "Atrial fibrillation".'),
    (_q(options={"A": "x", "A ": "y"}), "the option letter 'A' is used twice; give each option its own letter."),
    (_q(id=["x"]), 'the id is a list; write a text such as "id": "case-2", or leave the id out.'),
    (_q(question="Q? " + "x" * 1_000_000), "the question with its options is 1,000,034 characters long; medcal "
     "reads at most 1,000,000 characters a line (far more than a context holds). Shorten it."),
], ids=["list-row", "options-text", "options-missing", "index-out-of-range", "answer-bool", "answer-list",
        "answer-letter", "question-number", "question-missing", "option-object", "option-null", "letter-twice",
        "id-list", "huge-row"])
def test_question_rows_of_the_wrong_shape(tmp_path: Path, tiny_model: Path, row: object, message: str) -> None:
    q = write_jsonl(tmp_path / "q.jsonl", [GOOD_Q, row])
    assert fails("mcq", "-m", tiny_model, "--questions", q) == f"{q}, line 2: {message}"


@pytest.mark.parametrize(("row", "message"), [
    ('"just text"', f"the line holds a text; each line must be one JSON object such as {P_ROW}."),
    ({"prompt": 5}, 'the prompt is a number, not a text; write "prompt": "Summarise this ECG report".'),
    ({"prompt": "  "}, 'the prompt is empty; write "prompt": "Summarise this ECG report".'),
    ({"messages": [{"role": "user", "content": {"a": 1}}]},
     'message 1\'s content is an object, not a text; write {"role": "user", "content": "..."}.'),
    ({"messages": [{"role": "doctor", "content": "x"}]},
     "message 1 has the role 'doctor'; write one of system, user, assistant."),
    ({"messages": ["hi"]}, 'message 1 is a text; write each message as {"role": "user", "content": "..."}.'),
    ({"messages": "hello"}, 'the messages are a text; write a list such as [{"role": "user", "content": "..."}].'),
    ({"messages": []}, 'the messages are an empty list; write a list such as '
                       '[{"role": "user", "content": "..."}].'),
    ({"id": None, "prompt": "x"}, 'the id is null; write a text such as "id": "case-2", or leave the id out.'),
    ({"text": "x"}, f"the line has neither a prompt nor messages; write {P_ROW}."),
    ({"prompt": "y" * 1_000_001}, "the prompt is 1,000,001 characters long; medcal reads at most 1,000,000 "
     "characters a line (far more than a context holds). Shorten it."),
], ids=["text-row", "prompt-number", "prompt-blank", "content-object", "unknown-role", "message-text",
        "messages-text", "messages-empty", "id-null", "neither", "huge-prompt"])
def test_prompt_rows_of_the_wrong_shape(tmp_path: Path, tiny_model: Path, row: object, message: str) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [GOOD_P, row])
    assert fails("agree", "-b", tiny_model, "-m", tiny_model, "-p", p) == f"{p}, line 2: {message}"


def test_a_question_longer_than_the_context_is_named_at_its_line(tmp_path: Path, tiny_model: Path) -> None:
    q = write_jsonl(tmp_path / "q.jsonl", [_q(question="Why? " + "sinus rhythm " * 300), GOOD_Q])
    msg = fails("mcq", "-m", tiny_model, "--questions", q, "--ctx", "256")
    assert msg.startswith(f"{q}, line 1: the question with its longest option needs ")
    assert msg.endswith(" tokens; the context holds 256. Raise --ctx or shorten it.")


def test_agree_limit_below_one_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [GOOD_P, {**GOOD_P, "id": "p2"}])
    assert fails("agree", "-b", tiny_model, "-m", tiny_model, "-p", p, "--limit", "-1") == (
        "The number of prompts to use must be at least 1 (got -1).")  # prompts[:-1] dropped the last one


# -- a hostile chat template inside the model file ------------------------------------------------------------

@pytest.mark.parametrize(("template", "why"), [
    ("{{ raise_exception('no system role here') }}", "the template refuses this conversation: no system role here"),
    # 10^10 iterations: llama-cpp-python's formatter, used before, rendered it until killed
    ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}", None),
])
@pytest.mark.timeout(120)
def test_a_hostile_chat_template_in_the_gguf_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         template: str, why: str | None) -> None:
    import medcal_gui.llama.tiny_model as tm

    monkeypatch.setattr(tm, "GEMMA_CHAT_TEMPLATE", template)  # the file is real; only its template differs
    model = tm.write_tiny_gemma3(tmp_path / "hostile.gguf")
    q = write_jsonl(tmp_path / "q.jsonl", [GOOD_Q])
    t0 = time.monotonic()
    msg = fails("mcq", "-m", model, "--questions", q)
    assert time.monotonic() - t0 < 30
    head = f"The chat template embedded in {model} cannot be used: "
    assert msg.startswith(head) and "--template" not in msg  # no option of chat's offered to mcq
    if why is not None:
        assert msg == f"{head}{why}."
    else:
        assert "longer than" in msg


# -- outputs checked before any work ---------------------------------------------------------------------------

def test_agree_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path: Path, tiny_model: Path) -> None:
    p = write_jsonl(tmp_path / "p.jsonl", [GOOD_P])
    afile = tmp_path / "afile"
    afile.write_text("mine\n", encoding="utf-8")
    msg = fails("agree", "-b", tiny_model, "-m", tiny_model, "-p", p, "-d", afile)
    assert msg.startswith("Cannot write ") and f"{afile / 'agree.html'}: {afile} is a file, not a folder." in msg
    assert afile.read_text(encoding="utf-8") == "mine\n"
    d = tmp_path / "out"
    (d / "agree.json").mkdir(parents=True)
    msg = fails("agree", "-b", tiny_model, "-m", tiny_model, "-p", p, "-d", d)
    assert msg.startswith(f"The agreement report path {d / 'agree.json'} is a folder, not a file: ")
    assert sorted(os.listdir(d)) == ["agree.json"] and not os.listdir(d / "agree.json")


# -- class 7: valid JSON Lines with raw U+2028 / U+2029 inside strings -----------------------------------------

def test_raw_line_and_paragraph_separators_inside_strings_are_valid_jsonl(tmp_path: Path, tiny_model: Path) -> None:
    """json.dumps(ensure_ascii=False) writes U+2028 and U+2029 raw; str.splitlines() split the line there and
    the halves were "not valid JSON"."""
    q_text = "Rhythm?\u2028ECG attached.\u2029Which one?"
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({**GOOD_Q, "id": "q\u2028one", "question": q_text,
                             "options": ["AF\u2029irregular", "sinus"], "answer": 0}, ensure_ascii=False) + "\n"
                 + json.dumps({**GOOD_Q, "id": "q2"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert "\u2028" in q.read_text(encoding="utf-8")  # raw, not escaped
    rc, out, err = medcal("mcq", "-m", tiny_model, "--questions", q, "--ctx", "256", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["n_questions"] == 2 and res["models"][0]["items"][0]["id"] == "q\u2028one"
    first = load_questions(q)[0]
    assert first.question == q_text and first.options == ("AF\u2029irregular", "sinus")

    p_text = "Summarise:\u2028HR 120 bpm.\u2029No chest pain."
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "p\u2029", "prompt": p_text}, ensure_ascii=False) + "\n", encoding="utf-8")
    rc, out, err = medcal("agree", "-b", tiny_model, "-m", tiny_model, "-p", p, "-n", "4", "--ctx", "256", "--json")
    assert rc == 0, err
    prompt = json.loads(out)["models"][0]["prompts"][0]
    assert prompt["id"] == "p\u2029" and prompt["prompt"] == p_text
