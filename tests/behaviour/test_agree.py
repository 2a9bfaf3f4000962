"""Answer agreement on real models: a model against itself agrees fully; the metrics and fact extraction
give the values worked out by hand; prompt files fail with their line; the CLI writes its three views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medcal_gui.behaviour.agree import (
    Prompt,
    agree,
    edit_similarity,
    first_difference,
    load_prompts,
    rouge_l,
)
from medcal_gui.behaviour.agree_report import diff_spans
from medcal_gui.behaviour.clinical_facts import compare_facts, extract_facts
from medcal_gui.core.errors import DataError, InputError


def test_facts_numbers_terms_and_negations() -> None:
    t = ("HR 120 bpm, BP 90/60 mmHg, T 38.50 °C, QTc 480ms, SpO2 88 %. Atrial fibrillation. "
         "No acute ST depression; denies chest pain.")
    f = extract_facts(t)
    assert f == ["120 bpm", "90/60 mmHg", "38.5 °C", "480 ms", "88 %", "term:atrial fibrillation",
                 "neg:st depression", "term:st depression", "neg:chest pain", "term:chest pain"]
    c = compare_facts(t, "Rate 120 BPM in atrial fibrillation with ST depression.")
    assert c.kept == ["120 bpm", "term:atrial fibrillation", "term:st depression"]
    assert "neg:st depression" in c.missing and "90/60 mmHg" in c.missing
    assert c.kept_fraction == pytest.approx(3 / 10)
    assert extract_facts("a 12mm lesion; 5 mg; 200 ms; 3 msec") == ["12 mm", "5 mg", "200 ms"]


def test_metrics_against_hand_values() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2
    assert edit_similarity([1, 2, 3, 4], [1, 2, 4]) == pytest.approx(0.75)
    assert edit_similarity([], []) == 1.0
    # LCS("the rate is fast", "the rate is slow") = 3 of 4 words each -> F1 0.75
    assert rouge_l("The rate is fast", "the rate is slow") == pytest.approx(0.75)
    a, b = diff_spans("sinus rhythm at 80 bpm", "sinus tachycardia at 80 bpm")
    assert [t for t, d in a if d] == ["rhythm"] and [t for t, d in b if d] == ["tachycardia"]


def test_prompt_files(tmp_path: Path, sample_file: Path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "a", "prompt": "Hi"}) + "\n" + json.dumps(
        {"id": "b", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]}) + "\n",
        encoding="utf-8")
    ps = load_prompts([p])
    assert [x.id for x in ps] == ["a", "b"] and ps[1].as_messages()[0]["role"] == "system"
    p.write_text(json.dumps({"id": "a", "prompt": "Hi"}) + "\n" + json.dumps({"id": "a", "prompt": "x"}) + "\n",
                 encoding="utf-8")
    with pytest.raises(DataError, match="line 2: the id 'a' was already used on line 1"):
        load_prompts([p])
    p.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1: the line has neither a prompt nor messages"):
        load_prompts([p])
    with pytest.raises(InputError, match="does not exist"):
        load_prompts([tmp_path / "none.jsonl"])
    # narratives: the held-out split (last 20 % of the records) by default
    held = load_prompts([sample_file])
    every = load_prompts([sample_file], held_out=False)
    assert 0 < len(held) < len(every)
    assert [x.id for x in held] == [x.id for x in every[-len(held):]]


def test_tiny_model_against_itself_agrees_fully(tiny_model: Path, tmp_path: Path) -> None:
    prompts = _prompts(tmp_path)
    res = agree(tiny_model, [tiny_model], prompts, n_max=12, n_ctx=256, threads=1)
    (m,) = res.models
    assert m.identical.k == len(prompts) == 3
    assert all(p.first_diff is None and p.edit_similarity == 1.0 and not p.facts.missing for p in m.prompts)
    assert all(len(p.base.tokens) == len(p.other.tokens) for p in m.prompts)
    assert m.tokens_generated == sum(len(p.base.tokens) for p in m.prompts) > 0
    assert m.summary()["first_diff_mean"] is None


def _prompts(folder: Path) -> list[Prompt]:
    p = folder / "agree_prompts.jsonl"
    rows = [{"id": "1", "prompt": "Heart rate 120 bpm, atrial fibrillation."},
            {"id": "2", "prompt": "No ST depression."}, {"id": "3", "prompt": "Blood pressure 90/60 mmHg."}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_prompts([p])


@pytest.mark.slow
def test_demo_model_against_itself_cli_writes_views(demo_model: Path, sample_file: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "medcal_gui", "agree", "-b", str(demo_model), "-m",
                          str(demo_model), "-p", str(sample_file), "--limit", "2", "-n", "16", "-t", "1",
                          "--ctx", "1024", "-d", str(tmp_path / "out"), "--json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    m = d["models"][0]
    assert d["n_prompts"] == 2 and m["identical"]["k"] == 2 and m["first_diff_mean"] is None
    assert all(p["base"] == p["answer"] and p["base_tokens"] > 0 for p in m["prompts"])
    html = (tmp_path / "out" / "agree.html").read_text(encoding="utf-8")
    assert html.count("identical;") == 2 and 'class="del"' not in html
    assert json.loads((tmp_path / "out" / "agree.json").read_text(encoding="utf-8"))["n_prompts"] == 2
    assert (tmp_path / "out" / "agree.md").read_text(encoding="utf-8").startswith("# Answers of")


def test_a_lexicon_without_terms_is_an_error() -> None:
    from medcal_gui.behaviour.clinical_facts import parse_lexicon

    with pytest.raises(InputError, match="lex.toml: the lexicon lists no terms"):
        parse_lexicon('units = ["bpm"]\n', "lex.toml")
    with pytest.raises(InputError, match="lex.toml: not a readable lexicon"):
        parse_lexicon("units = [", "lex.toml")
