"""Multiple-choice scoring on real models: shared-prefix scores equal a from-scratch computation, a model
against itself flips nothing, and bad question files fail with their line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medcal_gui.behaviour.behave_context import BehaveModel
from medcal_gui.behaviour.mcq import encode_question, load_questions, run_mcq, score_direct, score_options
from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.resources import samples_dir

SMOKE = samples_dir() / "questions" / "cardiology_smoke.jsonl"


def _write(tmp_path: Path, rows: list[object]) -> Path:
    p = tmp_path / "q.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return p


def test_smoke_set_loads_and_is_labelled() -> None:
    qs = load_questions(SMOKE)
    assert len(qs) == 30
    assert len({q.id for q in qs}) == 30
    assert all(len(q.options) == 4 for q in qs)
    assert "not a benchmark" in SMOKE.read_text(encoding="utf-8").splitlines()[0]
    assert (SMOKE.parent / "README.md").read_text(encoding="utf-8").startswith("# cardiology_smoke.jsonl: a smoke")


def test_list_options_with_index_answer(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"id": "x", "question": "Q?", "options": ["one", "two", "three"], "answer": 2}])
    (q,) = load_questions(p)
    assert q.labels == ("A", "B", "C")
    assert q.answer == 2
    assert "C. three" in q.user_text()


@pytest.mark.parametrize(("row", "needle"), [
    ({"id": "a", "question": "Q?", "options": {"A": "x", "B": "y"}}, "answer is missing"),
    ({"id": "a", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "E"}, "not among the options"),
    ({"id": "a", "question": "Q?", "options": ["x", "y"], "answer": 5}, "not among the 2 options"),
    ({"id": "a", "question": "", "options": ["x", "y"], "answer": 0}, "question is empty"),
    ({"id": "a", "question": "Q?", "options": ["x"], "answer": 0}, "2 to 26 options"),
    ("{not json", "not valid JSON"),
])
def test_bad_rows_name_their_line(tmp_path: Path, row: object, needle: str) -> None:
    good = {"id": "g", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "A"}
    p = _write(tmp_path, [good, "", row])
    with pytest.raises(DataError) as ei:
        load_questions(p)
    assert ei.value.line == 3
    assert needle in ei.value.message
    assert f"{p}, line 3:" in ei.value.message


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    row = {"id": "same", "question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "B"}
    p = _write(tmp_path, [row, row])
    with pytest.raises(DataError, match=r"line 2: the id 'same' was already used on line 1"):
        load_questions(p)


def test_empty_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no questions"):
        load_questions(tmp_path / "e.jsonl")


def _check_scores_equal_direct(model: Path, n_questions: int) -> None:
    qs = load_questions(SMOKE)[:n_questions]
    with BehaveModel(model, n_ctx=512, threads=2) as m:
        for q in qs:
            prefix, opts = encode_question(m, q)
            assert prefix[0] == m.bos and len(opts) == 4
            shared = score_options(m, prefix, opts)
            direct = [score_direct(m, prefix, o) for o in opts]
            assert all(s < 0 for s in shared)
            # equal up to float noise: the prefix is computed in other batch shapes (F16 KV cells); an
            # off-by-one in positions or rows would move a score by whole nats
            for s, d, o in zip(shared, direct, opts, strict=True):
                assert s == pytest.approx(d, rel=1e-3, abs=1e-3 * len(o))
            assert shared.index(max(shared)) == direct.index(max(direct))


def test_option_scores_equal_direct_loglikelihood_tiny(tiny_model: Path) -> None:
    _check_scores_equal_direct(tiny_model, 4)


@pytest.mark.slow
def test_option_scores_equal_direct_loglikelihood_demo(demo_model: Path) -> None:
    _check_scores_equal_direct(demo_model, 2)


def test_model_against_itself_flips_nothing(tiny_model: Path, tmp_path: Path) -> None:
    p = tmp_path / "five.jsonl"
    p.write_text("".join(SMOKE.read_text(encoding="utf-8").splitlines(keepends=True)[:5]), encoding="utf-8")
    res = run_mcq([tiny_model, tiny_model], p, n_ctx=512, threads=2)
    a, b = res.models
    assert res.n_questions == 5
    assert [s.predicted for s in a.items] == [s.predicted for s in b.items]
    assert a.accuracy.k == b.accuracy.k
    (f,) = res.flips
    assert f.lost == [] and f.gained == [] and f.p_value == 1.0
    assert a.tokens_evaluated > 5 * 40


def test_cli_mcq_json_and_bad_file(tiny_model: Path, tmp_path: Path) -> None:
    p = _write(tmp_path, [{"id": "1", "question": "Heart rate 40 bpm is?", "options": ["bradycardia",
                                                                                       "tachycardia"],
                           "answer": 0}])
    out = subprocess.run([sys.executable, "-m", "medcal_gui", "mcq", "-m", str(tiny_model), "--questions", str(p),
                          "--ctx", "256", "-t", "2", "--json"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["n_questions"] == 1 and len(d["models"][0]["items"][0]["scores"]) == 2
    bad = _write(tmp_path, [{"id": "1", "question": "Q?", "options": ["a", "b"]}])
    out = subprocess.run([sys.executable, "-m", "medcal_gui", "mcq", "-m", str(tiny_model), "--questions", str(bad)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"medcal mcq: error: {bad}, line 1: the answer is missing; write the right option's letter (A, B) or its "
        'index (0 to 1), e.g. "answer": "A".']


def test_one_sequence_fallback_scores_the_same(tiny_model: Path) -> None:
    (q,) = load_questions(SMOKE)[:1]
    with BehaveModel(tiny_model, n_ctx=512, threads=1) as par, \
            BehaveModel(tiny_model, n_ctx=512, threads=1, n_seq_max=1) as seq:
        a = score_options(par, *encode_question(par, q))
        b = score_options(seq, *encode_question(seq, q))
        # the prefix's cells are gone afterwards: a fresh question scores as from scratch
        again = score_options(par, *encode_question(par, q))
    assert a == pytest.approx(b, rel=1e-3, abs=1e-3)
    assert again == pytest.approx(a, rel=1e-5, abs=1e-5)


def test_cancel_stops_between_questions(tiny_model: Path) -> None:
    from medcal_gui.core.errors import Cancelled
    from medcal_gui.core.jobs import CancelToken, Progress

    token = CancelToken()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        token.cancel()

    with pytest.raises(Cancelled):
        run_mcq([tiny_model], load_questions(SMOKE)[:5], n_ctx=512, threads=1, progress=progress, cancel=token)
    assert [p.done for p in seen] == [1]
