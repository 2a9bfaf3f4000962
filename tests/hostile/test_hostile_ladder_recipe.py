"""`medcal ladder`, `medcal recipe` and `medcal compare-calibrations` on hostile and unlucky inputs (issue 25,
classes 1, 4, 6, 7 and 8).

Real files, the real tiny GGUF, real quantizations, a real process and a real SIGINT. Each refusal is one line
naming the flag (or the file) and what to write instead, comes before any work, and leaves the output folder
exactly as it was: same names, same bytes. Clean-up removes only what medcal made and marked as its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcal_gui.cli.main import main
from medcal_gui.core.errors import Cancelled
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.core.ownership import MARKER, is_marked
from medcal_gui.workflows.ladder.ladder import RUNGS_KIND
from medcal_gui.workflows.recipe.candidates import WORK_KIND
from medcal_gui.workflows.recipe.recipe import run_recipe

TYPES = "Q2_K,Q4_K,Q8_0"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): equal snapshots, untouched folder."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in folder.rglob("*")}


def one_line_error(capsys: pytest.CaptureFixture[str], command: str, *args: str | Path,
                   after_work: bool = False) -> str:
    """The command's error, one line. A refusal before any work is the only line on stderr; one found during
    the work (`after_work`) comes after progress lines."""
    capsys.readouterr()
    rc = main([command, *(str(a) for a in args)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert (after_work or len(lines) == 1) and lines[-1].startswith(f"medcal {command}: error: "), err
    assert "Traceback" not in err and sum("error" in ln for ln in lines) == 1
    return lines[-1].removeprefix(f"medcal {command}: error: ")


@pytest.fixture(scope="module")
def texts(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    text = sample_file.read_text(encoding="utf-8")
    folder = tmp_path_factory.mktemp("texts")
    cal, held = folder / "cal.txt", folder / "held.txt"
    cal.write_text(text[: len(text) // 2], encoding="utf-8")
    held.write_text(text[len(text) // 2:], encoding="utf-8")
    return cal, held


@pytest.fixture(scope="module")
def imatrix(tiny_model: Path, texts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    out = tmp_path_factory.mktemp("imx") / "imatrix.gguf"
    compute_imatrix(tiny_model, [texts[0]], n_ctx=64, n_chunks=3, threads=1, out=out)
    return out


def ladder_args(tiny: Path, held: Path, out: Path, *extra: str | Path, types: str = "Q8_0") -> list[str | Path]:
    return ["-m", tiny, "--heldout", held, "--types", types, "-d", out, "-c", "64", "--eval-chunks", "2",
            "--imatrix-chunks", "2", "-r", "1", "-t", "1", *extra]


# -- class 4: no output over an input, checked before any work -------------------------------------------------

@pytest.mark.parametrize("name", ["ladder.md", "ladder.json", "ladder.svg", "ladder.png", "tiny-gemma3-f32-Q8_0.gguf",
                                  "tiny-gemma3-f32-Q8_0.gguf.sha256", "rungs/Q8_0.json", "rungs/base.json"])
def test_ladder_never_writes_over_its_held_out_text(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                                    texts: tuple[Path, Path], tmp_path: Path, name: str) -> None:
    d = tmp_path / "lad"
    held = d / name
    held.parent.mkdir(parents=True)
    held.write_bytes(texts[1].read_bytes())
    before = snapshot(d)
    msg = one_line_error(capsys, "ladder", *ladder_args(tiny_model, held, d, "--calibration", texts[0]))
    assert f"{held} is the same file as the input {held}" in msg and "never overwrites an input" in msg
    assert snapshot(d) == before  # the text is whole, and no rungs/ or report appeared


def test_ladder_never_writes_over_its_other_inputs(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                                   texts: tuple[Path, Path], imatrix: Path, tmp_path: Path) -> None:
    cases = [  # (flag, the input's name in -d DIR, where its content comes from); Q4_K_M uses an imatrix
        ("--calibration", "imatrix.json", texts[0]),  # the computed imatrix's record
        ("--calibration", "imatrix.gguf", texts[0]),  # the computed imatrix
        ("--imatrix", "tiny-gemma3-f32-Q4_K_M.gguf", imatrix),  # the rung's quant
        ("--imatrix", "tiny-gemma3-f32-Q4_K_M.gguf.manifest.json", imatrix),  # its manifest
        ("--questions", "ladder.json", texts[1]),
    ]
    for i, (flag, name, source) in enumerate(cases):
        d = tmp_path / f"lad{i}"
        d.mkdir()
        victim = d / name
        victim.write_bytes(source.read_bytes())
        before = snapshot(d)
        extra = [] if flag == "--calibration" else ["--calibration", texts[0]] if flag == "--questions" else []
        msg = one_line_error(capsys, "ladder", *ladder_args(tiny_model, texts[1], d, flag, victim, *extra,
                                                            types="Q4_K_M"))
        assert f"the same file as the input {victim}" in msg, (flag, msg)
        assert snapshot(d) == before, flag


def test_recipe_never_writes_over_an_input(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                           texts: tuple[Path, Path], imatrix: Path, tmp_path: Path) -> None:
    d = tmp_path / "out"
    d.mkdir()
    out = d / "mix.gguf"
    for name in ("mix.tensor-types.txt", "mix.recipe.md", "mix.recipe.json", "mix.recipe.svg", "mix.gguf.sha256",
                 "mix.gguf.manifest.json", "mix.gguf"):
        held = d / name
        held.write_bytes(texts[1].read_bytes())
        before = snapshot(d)
        msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--heldout", held,
                             "--target-bpw", "4.6", "--types", TYPES, "-o", out, "-t", "1")
        assert f"the same file as the input {held}" in msg, (name, msg)
        assert snapshot(d) == before, name  # and no work folder was made
        held.unlink()
    # the imatrix as the output, and an input inside the work folder medcal deletes files in
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--target-bpw", "4.6",
                         "-o", imatrix)
    assert f"The output {imatrix} is the same file as the input {imatrix}" in msg
    work = d / "tiny-gemma3-f32.recipe-work"
    work.mkdir()
    held = work / "held.txt"
    held.write_bytes(texts[1].read_bytes())
    before = snapshot(d)
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--heldout", held,
                         "--target-bpw", "4.6", "-o", out)
    assert "holds files medcal did not mark as its own (held.txt)" in msg
    assert snapshot(d) == before


def test_recipe_never_writes_over_a_ladder_rung_it_compares(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                                             texts: tuple[Path, Path], imatrix: Path,
                                                             tmp_path: Path) -> None:
    lad = tmp_path / "lad"
    assert main(["ladder", *map(str, ladder_args(tiny_model, texts[1], lad, "--imatrix", imatrix))]) == 0
    rung = lad / "tiny-gemma3-f32-Q8_0.gguf"
    before = snapshot(lad)
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--heldout", texts[1],
                         "--target-bpw", "4.6", "--ladder", lad, "-o", rung)
    assert f"The output {rung} is the same file as the input {rung}" in msg
    assert snapshot(lad) == before
    # a --ladder that is not one: named, not silently ignored; a ladder.json of another shape: the key named
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--heldout", texts[1],
                         "--target-bpw", "4.6", "--ladder", tmp_path, "-o", tmp_path / "r.gguf")
    assert msg == (f"--ladder {tmp_path}: there is no ladder.json there. Give the folder `medcal ladder -d` wrote, "
                   "or its ladder.json.")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": {"sha256": "x"}, "rungs": [{"type": "Q8_0", "file": "f", "kld_mean": "?"}]}),
                   encoding="utf-8")
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--heldout", texts[1],
                         "--target-bpw", "4.6", "--ladder", bad, "-o", tmp_path / "r.gguf")
    assert str(bad) in msg and '"rungs"[0]["kld_mean"] is not a finite number' in msg
    assert not (tmp_path / "tiny-gemma3-f32.recipe-work").exists()


def test_compare_calibrations_refuses_two_names_for_one_file(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                                             texts: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_bytes(texts[0].read_bytes()[:2000])
    d = tmp_path / "cmp"
    msg = one_line_error(capsys, "compare-calibrations", "-m", tiny_model, "--type", "Q4_K_M", "--heldout", texts[1],
                         "--calibration", f"a/b={texts[0]}", "--calibration", f"a_b={other}", "-d", d)
    assert msg == ("The calibration names 'a/b' and 'a_b' give the same file names in the output folder; choose "
                   "names that differ in letters or digits.")
    d.mkdir()
    held = d / "comparison.md"
    held.write_bytes(texts[1].read_bytes())
    before = snapshot(d)
    msg = one_line_error(capsys, "compare-calibrations", "-m", tiny_model, "--type", "Q4_K_M", "--heldout", held,
                         "--calibration", f"a={texts[0]}", "-d", d)
    assert f"the same file as the input {held}" in msg
    assert snapshot(d) == before


# -- classes 6 and 7: numbers that are not numbers, lists that are empty --------------------------------------

LADDER_NUMBERS = [
    ("--reps", "0", "--reps: '0' is out of range; write a whole number between 1 and 1000."),
    ("--reps", "-1", "--reps: '-1' is out of range; write a whole number between 1 and 1000."),
    ("--reps", "1e400", "--reps: '1e400' is not a whole number; write a whole number between 1 and 1000."),
    ("--max-kld", "nan", "--max-kld: 'nan' is not a finite number; write a number of at least 0."),
    ("--max-kld", "1e400", "--max-kld: '1e400' is not a finite number; write a number of at least 0."),
    ("--max-kld", "-0.5", "--max-kld: '-0.5' is out of range; write a number of at least 0."),
    ("--min-tg", "inf", "--min-tg: 'inf' is not a finite number; write a number of at least 0."),
    ("--max-size", "inf", "Cannot read the --max-size 'inf': write it like 2.5GB, 300MB or 1.2GiB."),
    ("--max-size", "1e400", "The --max-size '1e400' is not a size medcal can use: write it like 2.5GB, 300MB or "
                            "1.2GiB (at most 1000TB)."),
    ("--eval-chunks", "0", "--eval-chunks: '0' is out of range; write a whole number of at least 1."),
    ("--imatrix-chunks", "nan", "--imatrix-chunks: 'nan' is not a whole number; write a whole number of at least 1."),
    ("--types", "", "--types names no type (an empty list, or an unset shell variable): give at least one "
                    "quantization type, e.g. --types Q8_0,Q4_K_M, or leave --types out for the default ladder."),
    ("--types", ",", "--types names no type (an empty list, or an unset shell variable): give at least one "
                     "quantization type, e.g. --types Q8_0,Q4_K_M, or leave --types out for the default ladder."),
]


@pytest.mark.parametrize(("flag", "value", "message"), LADDER_NUMBERS)
def test_ladder_numbers_and_types_are_one_line_errors_before_anything_is_made(
        capsys: pytest.CaptureFixture[str], tiny_model: Path, texts: tuple[Path, Path], tmp_path: Path, flag: str,
        value: str, message: str) -> None:
    new = tmp_path / "new"
    args = ["-m", tiny_model, "--heldout", texts[1], "--calibration", texts[0], "-d", new, "-c", "64", "-t", "1",
            flag, value]
    assert one_line_error(capsys, "ladder", *args) == message
    assert not new.exists()  # not even new/rungs/: --reps 0 left it


RECIPE_NUMBERS = [
    (["--target-bpw", "0"], "--target-bpw: 0 must be above zero; write the bits per weight the file may take, "
                            "e.g. --target-bpw 4.5."),
    (["--target-bpw", "-1"], "--target-bpw: -1 must be above zero; write the bits per weight the file may take, "
                             "e.g. --target-bpw 4.5."),
    (["--target-bpw", "nan"], "--target-bpw: 'nan' is not a finite number; write a number."),
    (["--target-bpw", "inf"], "--target-bpw: 'inf' is not a finite number; write a number."),
    (["--target-bpw", "1e400"], "--target-bpw: '1e400' is not a finite number; write a number."),
    (["--target-size", "inf"], "Cannot read the --target-size 'inf': write it like 2.5GB, 300MB or 1.2GiB."),
    (["--target-size", "0"], "The --target-size '0' must be above zero: write it like 2.5GB, 300MB or 1.2GiB."),
    (["--target-bpw", "4", "--types", ""], "--types names no type (an empty list, or an unset shell variable): give "
     "at least one tensor type, e.g. --types Q4_K,Q6_K,Q8_0, or leave --types out for the default candidates."),
    (["--target-bpw", "4", "--types", ","], "--types names no type (an empty list, or an unset shell variable): give "
     "at least one tensor type, e.g. --types Q4_K,Q6_K,Q8_0, or leave --types out for the default candidates."),
    (["--target-bpw", "4", "--heldout", "HELD", "--compare", ""], "--compare names no type (an empty list, or an "
     "unset shell variable): give at least one stock type, e.g. --compare Q4_K_M, or leave --compare out for the "
     "types near the recipe's size."),
    (["--target-bpw", "4", "--heldout", "HELD", "--probe-chunks", "0"],
     "--probe-chunks: '0' is out of range; write a whole number of at least 1."),
    (["--target-bpw", "4", "--heldout", "HELD", "--eval-chunks", "1e400"],
     "--eval-chunks: '1e400' is not a whole number; write a whole number of at least 1."),
]


@pytest.mark.parametrize(("args", "message"), RECIPE_NUMBERS)
def test_recipe_numbers_and_types_are_one_line_errors_before_anything_is_made(
        capsys: pytest.CaptureFixture[str], tiny_model: Path, texts: tuple[Path, Path], imatrix: Path,
        tmp_path: Path, args: list[str], message: str) -> None:
    d = tmp_path / "out"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(d)
    args = [str(texts[1]) if a == "HELD" else a for a in args]
    assert one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "-o", d / "r.gguf", "-t", "1",
                          *args) == message
    assert snapshot(d) == before  # no work folder: --target-bpw 0 left one


def test_recipe_target_far_too_small_is_refused_before_any_candidate(capsys: pytest.CaptureFixture[str],
                                                                     tiny_model: Path, imatrix: Path,
                                                                     tmp_path: Path) -> None:
    msg = one_line_error(capsys, "recipe", "-m", tiny_model, "--imatrix", imatrix, "--target-size", "1KB",
                         "--types", TYPES, "-o", tmp_path / "r.gguf", "-t", "1")
    assert msg.startswith("The target 1 kB (1000 bytes) is below the smallest file these types can make: the "
                          "tensors alone take at least ")
    assert snapshot(tmp_path) == {}


# -- classes 1 and 8: clean-up only of what is medcal's own; refusals and failures leave nothing -------------

def test_a_failed_ladder_removes_the_folders_it_made_and_nothing_else(capsys: pytest.CaptureFixture[str],
                                                                      tiny_model: Path, texts: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")  # found only when the imatrix is computed, after OUTDIR and rungs/ were made
    new = tmp_path / "a" / "b"
    msg = one_line_error(capsys, "ladder", *ladder_args(tiny_model, texts[1], new, "--calibration", empty,
                                                                types="Q4_K_M"), after_work=True)
    assert msg == f"The calibration file {empty} is empty."
    assert not (tmp_path / "a").exists()
    # a folder of the user's: their files stay, and so does a rungs/ medcal did not make
    d = tmp_path / "mine"
    (d / "rungs").mkdir(parents=True)
    (d / "notes.txt").write_text("keep\n", encoding="utf-8")
    (d / "rungs" / "Q8_0.md").write_text("my notes on Q8_0\n", encoding="utf-8")
    before = snapshot(d)
    one_line_error(capsys, "ladder", *ladder_args(tiny_model, texts[1], d, "--calibration", empty, types="Q4_K_M"),
                   after_work=True)
    assert snapshot(d) == before
    (d / "rungs" / "Q8_0.md").unlink()
    (d / "rungs").rmdir()
    one_line_error(capsys, "ladder", *ladder_args(tiny_model, texts[1], d, "--calibration", empty, types="Q4_K_M"),
                   after_work=True)
    assert snapshot(d) == {"notes.txt": b"keep\n"}  # the rungs/ it made (and marked) is gone again


def test_a_cancelled_ladder_before_any_rung_leaves_the_new_folder_as_it_was(tiny_model: Path,
                                                                            texts: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    from medcal_gui.workflows.ladder.ladder import run_ladder

    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.stage == "eval":  # the base pass, before any rung
            token.cancel()

    new = tmp_path / "new"
    with pytest.raises(Cancelled):
        run_ladder(tiny_model, texts[1], calibration=[texts[0]], types=["Q8_0"], threads=1, out_dir=new, n_ctx=64,
                   eval_chunks=2, reps=1, progress=progress, cancel=token)
    assert not new.exists()
    # a finished ladder's rungs/ is medcal's own, marked so; a user's file beside the outputs survives a re-run
    new.mkdir()
    (new / "notes.txt").write_text("keep\n", encoding="utf-8")
    for _ in range(2):
        run_ladder(tiny_model, texts[1], calibration=[texts[0]], types=["Q8_0"], threads=1, out_dir=new, n_ctx=64,
                   eval_chunks=2, reps=1)
        assert (new / "notes.txt").read_text(encoding="utf-8") == "keep\n"
    assert is_marked(new / "rungs", RUNGS_KIND)


@pytest.fixture(scope="module")
def recipe_dir(tiny_model: Path, imatrix: Path, texts: tuple[Path, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished recipe (probes and measurements in its work folder, reused by the tests)."""
    d = tmp_path_factory.mktemp("recipe")
    run_recipe(tiny_model, imatrix, d / "mix.gguf", target_bpw=4.6, heldout=texts[1], types=TYPES.split(","),
               threads=1, n_ctx=64, probe_chunks=2, eval_chunks=2, compare=["Q4_K_M"])
    return d


def _recipe_set(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("mix."))


def test_recipe_work_folder_is_marked_and_a_cancel_after_the_gguf_leaves_nothing_describing_it(
        tiny_model: Path, imatrix: Path, texts: tuple[Path, Path], recipe_dir: Path) -> None:
    work = recipe_dir / "tiny-gemma3-f32.recipe-work"
    assert is_marked(work, WORK_KIND)
    assert _recipe_set(recipe_dir) == ["mix.gguf", "mix.gguf.manifest.json", "mix.gguf.sha256", "mix.recipe.json",
                                       "mix.recipe.md", "mix.recipe.svg", "mix.tensor-types.txt"]
    old = snapshot(recipe_dir)

    def run(after_gguf: bool) -> None:
        token = CancelToken()
        written: list[bool] = []

        def progress(p: Progress) -> None:
            if p.stage == "quantize" and p.message == "done":
                written.append(True)  # the final GGUF is in place (the probes are reused: no other quantize)
            if p.stage == "quantize" and not after_gguf or p.stage == "eval" and written:
                token.cancel()

        with pytest.raises(Cancelled):
            run_recipe(tiny_model, imatrix, recipe_dir / "mix.gguf", target_bpw=5.0, heldout=texts[1],
                       types=TYPES.split(","), threads=1, n_ctx=64, probe_chunks=2, eval_chunks=2,
                       compare=["Q4_K_M"], progress=progress, cancel=token)
        assert bool(written) == after_gguf

    # cancelled while the new GGUF is being written: the earlier recipe is whole, every file as it was
    run(after_gguf=False)
    assert {k: v for k, v in snapshot(recipe_dir).items() if k.startswith("mix.")} == \
        {k: v for k, v in old.items() if k.startswith("mix.")}
    # cancelled after the new GGUF replaced it (scoring it): nothing describes a GGUF that is not there
    run(after_gguf=True)
    assert _recipe_set(recipe_dir) == []
    assert is_marked(work, WORK_KIND) and (work / "errors.json").is_file()  # the measurements stay, for a re-run


@pytest.mark.timeout(120)
def test_sigint_during_the_recipes_final_write_leaves_no_tensor_type_file(tiny_model: Path, imatrix: Path,
                                                                          tmp_path: Path) -> None:
    """A real process and a real SIGINT, delivered when the final quantization reports progress: before the fix
    the .tensor-types.txt was already written and stayed, describing a GGUF never written, while the message said
    nothing partial was left behind."""
    d = tmp_path / "out"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "medcal_gui", "recipe", "-m", str(tiny_model), "--imatrix", str(imatrix),
           "--target-bpw", "4.6", "--types", TYPES, "-o", str(d / "mix.gguf"), "-t", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    lines: list[str] = []
    sent = None
    for line in p.stderr:  # the candidates quantize without progress lines: the first "quantize:" is the final one
        lines.append(line)
        if sent is None and line.startswith("quantize: "):
            p.send_signal(signal.SIGINT)
            sent = time.monotonic()
    rc = p.wait(timeout=60)
    assert sent is not None, "".join(lines[-20:])
    assert time.monotonic() - sent < 2  # stopped within 2 s of the signal
    assert rc == 130, "".join(lines[-20:])
    assert lines[-1].strip() == "medcal recipe: error: Cancelled by the user; nothing partial was left behind."
    assert sorted(os.listdir(d)) == ["notes.txt", "tiny-gemma3-f32.recipe-work"]
    assert (d / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    work = d / "tiny-gemma3-f32.recipe-work"
    assert is_marked(work, WORK_KIND) and MARKER in os.listdir(work)
    assert not [p for p in work.rglob("*") if p.name.startswith(".medcal-partial-")]


def test_compare_calibrations_failure_removes_the_folder_it_made(capsys: pytest.CaptureFixture[str],
                                                                 tiny_model: Path, texts: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    msg = one_line_error(capsys, "compare-calibrations", "-m", tiny_model, "--type", "Q4_K_M", "--heldout", texts[1],
                         "--calibration", f"e={empty}", "-d", tmp_path / "x" / "y", "-c", "64", after_work=True)
    assert msg == f"The calibration file {empty} is empty."
    assert not (tmp_path / "x").exists()
    msg = one_line_error(capsys, "compare-calibrations", "-m", tiny_model, "--type", "Q4_K_M", "--heldout", texts[1],
                         "--calibration", f"e={texts[0]}", "-d", tmp_path / "z", "--imatrix-chunks", "-2")
    assert msg == "--imatrix-chunks: '-2' is out of range; write a whole number of at least 1."
    assert not (tmp_path / "z").exists()
