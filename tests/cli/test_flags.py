"""One spelling for each flag across every subcommand; the old spellings still work and say so."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from medcal_gui.cli.flags import DeprecatedAlias, ShortOrOld
from medcal_gui.cli.main import build_parser

# short flag -> the one thing it means, in every subcommand that has it
MEANING = {"-m": "model", "-t": "threads", "-c": "ctx", "-n": "max_tokens"}
OUTPUT_FILE, OUTPUT_DIR = {"output"}, {"dir", "dest", "outdir", "output_dir"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_short_flag_means_the_same_in_every_command() -> None:
    wrong = []
    for name, p in _subparsers().items():
        for action in p._actions:
            old = isinstance(action, DeprecatedAlias)
            for flag in action.option_strings:
                if flag in MEANING and not old and action.dest != MEANING[flag]:
                    wrong.append(f"{name} {flag} -> {action.dest}")
                if flag == "-o" and not old and action.dest not in OUTPUT_FILE:
                    wrong.append(f"{name} -o -> {action.dest}")
                if flag == "-d" and not old and action.dest not in OUTPUT_DIR:
                    wrong.append(f"{name} -d -> {action.dest}")
                if flag in ("-f", "-q") and not old:
                    wrong.append(f"{name} {flag} is not a deprecated alias")
            if "--threads" in action.option_strings and "-t" not in action.option_strings:
                wrong.append(f"{name}: --threads without -t")
            if "--ctx" in action.option_strings and "-c" not in action.option_strings:
                wrong.append(f"{name}: --ctx without -c")
    assert wrong == []


def _parse(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[argparse.Namespace, str]:
    parser, _ = build_parser()
    args = parser.parse_args(list(argv))
    return args, capsys.readouterr().err


def test_quantize_t_is_threads_and_the_old_t_type_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    args, err = _parse(capsys, "quantize", "-m", "a.gguf", "-o", "b.gguf", "--type", "Q8_0", "-t", "2")
    assert (args.qtype, args.threads, err) == ("Q8_0", 2, "")
    args, err = _parse(capsys, "quantize", "-m", "a.gguf", "-o", "b.gguf", "-t", "Q4_K_M")
    assert (args.qtype, args.threads) == ("Q4_K_M", None)
    assert "`-t Q4_K_M` is deprecated" in err and "use `--type TYPE`" in err


def test_compare_c_is_ctx_and_the_old_c_name_file_still_adds_a_calibration(
        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["compare-calibrations", "-m", "a.gguf", "--type", "IQ3_XXS", "--heldout", "h.txt", "-d", "out"]
    args, err = _parse(capsys, *base, "-c", "256", "--calibration", "seed=s.txt")
    assert args.ctx == 256 and [c[0] for c in args.calibration] == ["seed"] and err == ""
    args, err = _parse(capsys, *base, "-c", "seed=s.txt", "-c", "other=o.txt")
    assert args.ctx == 512 and [c[0] for c in args.calibration] == ["seed", "other"]
    assert err.count("is deprecated") == 2 and "--calibration NAME=FILE" in err
    args, err = _parse(capsys, "compare-calibrations", "-m", "a.gguf", "-q", "Q4_K_M", "--heldout", "h.txt",
                       "-d", "out", "--calibration", "a=b")
    assert args.type == "Q4_K_M" and "`-q` is deprecated" in err


def test_the_old_f_and_o_spellings_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    args, err = _parse(capsys, "imatrix", "-m", "a.gguf", "-f", "x.txt", "y.txt", "-o", "im.gguf")
    assert args.calibration == [Path("x.txt"), Path("y.txt")] and "use `--calibration FILE...`" in err
    args, err = _parse(capsys, "eval", "--base", "a.gguf", "-m", "q.gguf", "-f", "t.txt")
    assert args.text == Path("t.txt") and "use `--text FILE`" in err
    args, err = _parse(capsys, "demo-model", "-o", "models")
    assert args.output_dir == Path("models") and "use `-d DIR`" in err
    args, err = _parse(capsys, "demo-model", "-d", "models")
    assert args.output_dir == Path("models") and err == ""


def test_a_required_option_with_an_old_spelling_is_still_required(capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main

    assert main(["quantize", "-m", "a.gguf", "-o", "b.gguf"]) == 2
    assert "--type TYPE" in capsys.readouterr().err
    assert main(["eval", "--base", "a.gguf", "-m", "q.gguf"]) == 2
    assert "needs --text FILE" in capsys.readouterr().err


def test_short_or_old_is_used_only_where_an_old_meaning_exists() -> None:
    users = sorted(name for name, p in _subparsers().items()
                   if any(isinstance(a, ShortOrOld) for a in p._actions))
    assert users == ["compare-calibrations", "quantize"]
