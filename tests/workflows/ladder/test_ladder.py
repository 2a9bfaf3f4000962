"""The quant ladder on the tiny model (fast) and on the demo model (slow): real quantize, eval and speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medcal_gui.core.errors import Cancelled, InputError
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.evaluate.evaluate import evaluate
from medcal_gui.evaluate.speed import mean_sd, measure_speed
from medcal_gui.workflows.ladder.ladder import run_ladder
from medcal_gui.workflows.ladder.ladder_report import mark_pareto, recommend
from medcal_gui.workflows.ladder.results import Constraints, Rung

TYPES = ["Q8_0", "Q4_K_M", "IQ3_XXS"]
FIELDS = ("kld_mean", "kld_median", "kld_p99", "same_top_pct", "rms_dp_pct", "ppl_ratio")


@pytest.fixture()
def texts(sample_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    text = sample_file.read_text(encoding="utf-8")
    cal, held = tmp_path / "cal.txt", tmp_path / "held.txt"
    cal.write_text(text[: len(text) // 2], encoding="utf-8")
    held.write_text(text[len(text) // 2:], encoding="utf-8")
    return cal, held


def _ladder(tiny: Path, texts: tuple[Path, Path], out: Path, **kw: object) -> object:
    args: dict[str, object] = dict(calibration=[texts[0]], types=TYPES, threads=1, out_dir=out, n_ctx=64,
                                   eval_chunks=3, imatrix_chunks=3, reps=2)
    args.update(kw)
    return run_ladder(tiny, texts[1], **args)  # type: ignore[arg-type]


def test_ladder_figures_match_eval_alone_and_front_is_monotone(tiny_model: Path, texts: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "lad"
    res = _ladder(tiny_model, texts, out)
    doc = json.loads((out / "ladder.json").read_text(encoding="utf-8"))
    assert [r["type"] for r in doc["rungs"]] == TYPES  # largest first
    for key in ("type", "file", "bytes", "bpw", "kld_mean", "kld_p99", "same_top_pct", "ppl_ratio",
                "pp_tokens_per_s", "tg_tokens_per_s", "speedup_tg", "pareto"):
        assert all(key in r for r in doc["rungs"]), key
    assert doc["base"]["tg_tokens_per_s"] > 0 and doc["base"]["pp_tokens_per_s"] > 0
    for r in doc["rungs"]:
        f = Path(r["file"])
        assert f.stat().st_size == r["bytes"]
        assert (f.with_name(f.name + ".sha256")).read_text().split()[0] == r["sha256"]
        assert f.with_name(f.name + ".manifest.json").is_file()
        alone = evaluate(tiny_model, [f], texts[1], n_ctx=64, threads=1, n_chunks=3).models[0]
        for k in FIELDS:
            assert r[k] == getattr(alone, k), (r["type"], k)
        assert r["speedup_tg"] == pytest.approx(r["tg_tokens_per_s"] / doc["base"]["tg_tokens_per_s"])
    front = sorted((r for r in doc["rungs"] if r["pareto"]), key=lambda r: r["bytes"])
    assert front and all(a["kld_mean"] >= b["kld_mean"] for a, b in zip(front, front[1:], strict=False))
    k = {r["type"]: r["kld_mean"] for r in doc["rungs"]}
    assert 0 < k["Q8_0"] < k["Q4_K_M"] < k["IQ3_XXS"]
    assert doc["recommendation"]["type"] in TYPES and doc["recommendation"]["text"]
    svg = (out / "ladder.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and all(f">{t}</text>" in svg for t in TYPES)
    md = (out / "ladder.md").read_text(encoding="utf-8")
    assert sum(ln.startswith(("| Q", "| IQ")) for ln in md.splitlines()) == 3
    assert res.imatrix is not None and (out / "imatrix.gguf").is_file()  # type: ignore[attr-defined]


def test_rerun_reuses_finished_rungs_and_redoes_a_damaged_one(tiny_model: Path, texts: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "lad"
    first = _ladder(tiny_model, texts, out, types=["Q8_0", "Q4_K_M"])
    q8 = Path(first.rungs[0].file)  # type: ignore[attr-defined]
    q4 = Path(first.rungs[1].file)  # type: ignore[attr-defined]
    mtime = q8.stat().st_mtime_ns
    with open(q4, "r+b") as fh:  # a damaged (incomplete) rung is not reused
        fh.truncate(q4.stat().st_size // 2)
    seen: list[Progress] = []
    again = _ladder(tiny_model, texts, out, types=["Q8_0", "Q4_K_M"], progress=seen.append)
    reused = {r.type: r.reused for r in again.rungs}  # type: ignore[attr-defined]
    assert reused == {"Q8_0": True, "Q4_K_M": False}
    assert q8.stat().st_mtime_ns == mtime
    assert not any(p.stage == "imatrix" and p.unit == "chunks" for p in seen)  # the imatrix was reused too
    assert again.rungs[0].kld_mean == first.rungs[0].kld_mean  # type: ignore[attr-defined]
    assert again.rungs[1].kld_mean == first.rungs[1].kld_mean  # type: ignore[attr-defined]


def test_cancel_in_a_rung_keeps_finished_rungs_and_leaves_no_partial_file(tiny_model: Path,
                                                                           texts: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    out = tmp_path / "lad"
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.extra.get("rung") == 2 and p.stage == "quantize" and p.done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        _ladder(tiny_model, texts, out, types=["Q8_0", "Q4_K_M"], progress=progress, cancel=token)
    assert (out / "rungs" / "Q8_0.json").is_file() and not (out / "rungs" / "Q4_K_M.json").exists()
    assert not list(out.glob("*Q4_K_M*")) and not list(out.glob("*.tmp"))
    assert not (out / "ladder.json").exists()
    res = _ladder(tiny_model, texts, out, types=["Q8_0", "Q4_K_M"])
    assert [r.reused for r in res.rungs] == [True, False]  # type: ignore[attr-defined]


def test_bad_inputs_are_one_line_errors(tiny_model: Path, texts: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="plain float"):
        _ladder(tiny_model, texts, tmp_path / "a", types=["F16"])
    with pytest.raises(InputError, match="importance matrix"):
        run_ladder(tiny_model, texts[1], types=["IQ3_XXS"], out_dir=tmp_path / "b")
    with pytest.raises(InputError, match="held-out"):
        run_ladder(tiny_model, texts[1], calibration=[texts[1]], types=["Q4_K_M"], out_dir=tmp_path / "c")
    r = subprocess.run([sys.executable, "-m", "medcal_gui", "ladder", "-m", str(tiny_model), "--heldout",
                        str(texts[1]), "--imatrix", str(tmp_path / "none.gguf"), "--types", "Q4_K_M",
                        "--max-size", "lots", "-d", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["medcal ladder: error: Cannot read the --max-size 'lots': write it "
                                             "like 2.5GB, 300MB or 1.2GiB."]


def _rung(t: str, size: int, kld: float, tg: float = 100.0) -> Rung:
    return Rung(type=t, file=Path(t), bytes=size, bpw=0, sha256="", kld_mean=kld, kld_median=kld, kld_p99=kld,
                same_top_pct=99, rms_dp_pct=1, ppl_ratio=1, ppl_model=1, pp_tokens_per_s=1, pp_sd=0,
                tg_tokens_per_s=tg, tg_sd=0, speedup_tg=tg / 50)


def test_recommendation_rules() -> None:
    rungs = [_rung("Q8_0", 300, 0.0005, 60), _rung("Q4_K_M", 200, 0.004, 90), _rung("Q4_K_S", 210, 0.006, 90),
             _rung("IQ3_XXS", 150, 0.05, 95)]
    mark_pareto(rungs)
    assert {r.type: r.pareto for r in rungs} == {"Q8_0": True, "Q4_K_M": True, "Q4_K_S": False, "IQ3_XXS": True}
    rec = recommend(rungs, Constraints())  # default: near-lossless
    assert rec["type"] == "Q4_K_M" and "Q4_K_S is 5 % larger and no better" in rec["text"]
    assert "IQ3_XXS, is 25 % smaller but its KLD 0.05 is over 0.01" in rec["text"]
    assert recommend(rungs, Constraints(max_kld=0.1))["type"] == "IQ3_XXS"
    assert recommend(rungs, Constraints(max_size=250))["type"] == "Q4_K_M"  # best fidelity within the size
    assert recommend(rungs, Constraints(max_kld=0.001, min_tg=80))["type"] is None


def test_speed_is_the_mean_and_sd_of_per_run_rates(tiny_model: Path) -> None:
    s = measure_speed(tiny_model, threads=1, reps=3, n_prompt=128, n_gen=16)
    assert len(s.pp_samples_ns) == 3 and len(s.tg_samples_ns) == 3
    assert (s.pp_tokens_per_s, s.pp_sd) == mean_sd(s.pp_samples_ns, 128)
    assert s.tg_tokens_per_s > 0 and s.tg_sd >= 0
    rates = [1e9 * 16 / t for t in s.tg_samples_ns]
    assert min(rates) <= s.tg_tokens_per_s <= max(rates)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        measure_speed(tiny_model, threads=1, reps=2, cancel=token)


@pytest.mark.slow
def test_demo_ladder_two_rungs(demo_model: Path, demo_imatrix: Path, demo_heldout: Path, tmp_path: Path) -> None:
    res = run_ladder(demo_model, demo_heldout, imatrix=demo_imatrix, types=["Q8_0", "Q4_K_M"], threads=1,
                     out_dir=tmp_path / "lad", eval_chunks=2, reps=1)
    q8, q4 = res.rungs
    assert q8.bytes > q4.bytes and q8.kld_mean < q4.kld_mean and q8.pareto and q4.pareto
    alone = evaluate(demo_model, [q4.file], demo_heldout, n_ctx=512, threads=1, n_chunks=2).models[0]
    assert all(getattr(q4, k) == getattr(alone, k) for k in FIELDS)
    assert q4.speedup_tg > 0 and res.base["tg_tokens_per_s"] > 0


def test_a_question_file_adds_accuracy_and_flips_to_every_rung(tiny_model: Path, texts: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    """Issue 15 on the ladder: each rung's accuracy equals `medcal mcq` on that file alone, with its flips
    against the base; ladder.md and ladder.json carry the columns."""
    import json

    from medcal_gui.behaviour.mcq import run_mcq
    from medcal_gui.core.resources import samples_dir

    questions = tmp_path / "q.jsonl"
    rows = (samples_dir() / "questions" / "cardiology_smoke.jsonl").read_text(encoding="utf-8").splitlines()
    questions.write_text("\n".join(rows[:6]) + "\n", encoding="utf-8")
    res = _ladder(tiny_model, texts, tmp_path / "out", types=["Q8_0"], questions=questions)
    rung = res.rungs[0]  # type: ignore[attr-defined]
    alone = run_mcq([tiny_model, rung.file], questions, threads=1)
    assert rung.mcq_accuracy_pct == 100 * alone.models[1].accuracy.value
    assert (rung.mcq_lost, rung.mcq_gained) == (len(alone.flips[0].lost), len(alone.flips[0].gained))
    assert rung.mcq_p == alone.flips[0].p_value
    assert res.base["mcq"]["accuracy_pct"] == 100 * alone.models[0].accuracy.value  # type: ignore[attr-defined]
    md = (tmp_path / "out" / "ladder.md").read_text(encoding="utf-8")
    assert "| accuracy | lost / gained (McNemar p) |" in md and f"(p = {rung.mcq_p:.3f})" in md
    doc = json.loads((tmp_path / "out" / "ladder.json").read_text(encoding="utf-8"))
    assert doc["rungs"][0]["mcq_accuracy_pct"] == rung.mcq_accuracy_pct
