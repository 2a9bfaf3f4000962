"""One spelling for each flag across every subcommand: `-m` the model, `-t` threads, `-c` the context size,
`-o` an output file, `-d` an output folder, `-n` a token count, `--type` the quant type (no short form).

Old spellings keep working for a release and say which one to use instead (on stderr): `quantize -t TYPE`,
`compare-calibrations -c NAME=FILE` and `-q TYPE`, `imatrix -f FILE`, `eval -f FILE`, `demo-model -o DIR`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any


def deprecation(old: str, new: str) -> str:
    return f"medcal: warning: `{old}` is deprecated and goes away in the next release; use `{new}`."


class DeprecatedAlias(argparse.Action):
    """An old spelling: does what `dest` does (storing or appending `convert(value)`) and says what to use."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, convert: Callable[[str], Any] = str,
                 append: bool = False, **kwargs: Any) -> None:
        self.new, self.convert, self.append = new, convert, append
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(deprecation(option_string or self.option_strings[0], self.new), file=sys.stderr)
        values = values if isinstance(values, list) else [values]
        converted = [self.convert(v) for v in values]
        if self.append:
            setattr(namespace, self.dest, list(getattr(namespace, self.dest, None) or []) + converted)
        else:
            setattr(namespace, self.dest, converted if self.nargs not in (None, "?") else converted[0])


class ShortOrOld(argparse.Action):
    """A short flag that takes its new meaning, unless the value can only be the old one: `-t 2` is threads,
    `-t Q4_K_M` (quantize's old spelling) is the type, with a deprecation message."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new_convert: Callable[[str], Any],
                 old_dest: str, old_test: Callable[[str], bool], old_convert: Callable[[str], Any] = str,
                 old_new: str = "", old_append: bool = False, **kwargs: Any) -> None:
        self.new_convert, self.old_dest, self.old_test = new_convert, old_dest, old_test
        self.old_convert, self.old_new, self.old_append = old_convert, old_new, old_append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        value = str(values)
        if self.old_test(value):
            print(deprecation(f"{option_string} {value}", self.old_new), file=sys.stderr)
            converted = self.old_convert(value)
            if self.old_append:
                converted = list(getattr(namespace, self.old_dest, None) or []) + [converted]
            setattr(namespace, self.old_dest, converted)
            return
        try:
            setattr(namespace, self.dest, self.new_convert(value))
        except ValueError:
            parser.error(f"argument {option_string}: invalid value: {value!r}")


def _is_int(v: str) -> bool:
    try:
        int(v)
    except ValueError:
        return False
    return True


def add_threads(p: argparse.ArgumentParser, *, old_type_dest: str | None = None) -> None:
    """`-t/--threads N`; with `old_type_dest`, `-t TYPE` (not a number) still sets the quant type."""
    help_ = "CPU threads (default: all)"
    if old_type_dest is None:
        p.add_argument("-t", "--threads", type=int, default=None, metavar="N", help=help_)
    else:
        p.add_argument("-t", "--threads", dest="threads", default=None, action=ShortOrOld, new_convert=int,
                       old_dest=old_type_dest, old_test=lambda v: not _is_int(v), old_new="--type TYPE",
                       metavar="N", help=help_)


def add_ctx(p: argparse.ArgumentParser, default: int, help: str, *,  # noqa: A002
            old_calibration: Callable[[str], Any] | None = None) -> None:
    """`-c/--ctx N`; with `old_calibration`, `-c NAME=FILE` (compare-calibrations' old spelling) still adds one."""
    if old_calibration is None:
        p.add_argument("-c", "--ctx", type=int, default=default, metavar="N", help=help)
    else:
        p.add_argument("-c", "--ctx", dest="ctx", default=default, action=ShortOrOld, new_convert=int,
                       old_dest="calibration", old_test=lambda v: "=" in v, old_convert=old_calibration,
                       old_append=True, old_new="--calibration NAME=FILE", metavar="N", help=help)


def add_deprecated(p: argparse.ArgumentParser, flag: str, dest: str, new: str, *,
                   convert: Callable[[str], Any] = str, nargs: str | None = None, append: bool = False) -> None:
    p.add_argument(flag, dest=dest, action=DeprecatedAlias, new=new, convert=convert, nargs=nargs, append=append)


def require(args: argparse.Namespace, dest: str, spelled: str) -> None:
    """An option that is required but has a deprecated alias (so argparse cannot require it itself)."""
    if not getattr(args, dest, None):
        from medcal_gui.core.errors import InputError

        raise InputError(f"This command needs {spelled}.")


def type_list(value: str) -> list[str]:
    """`--types Q8_0,Q4_K_M`: the names, blanks dropped (checked by the step that uses them). `--types ''` (an
    unset shell variable) or `--types ,` gives [], which the step refuses: it is not "the default"."""
    return [t.strip() for t in value.split(",") if t.strip()]


def whole_number(text: str | int | None, flag: str, *, low: int = 1, high: int | None = None) -> int | None:
    """A count given on the command line (`--reps 5`, `--eval-chunks 8`), None when the flag was left out. An
    InputError naming the flag and what to write for anything else: a word, 1e400, nan, -1, a number out of
    range. The flag is read as text so that the message is one line, not argparse's usage and error."""
    if text is None:
        return None
    from medcal_gui.core.errors import InputError

    bounds = f" between {low} and {high}" if high is not None else f" of at least {low}"
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", s):  # no 1e400, no 4,301-digit number int() would refuse
        raise InputError(f"{flag}: {text!r} is not a whole number; write a whole number{bounds}.")
    value = int(s)
    if value < low or (high is not None and value > high):
        raise InputError(f"{flag}: {text!r} is out of range; write a whole number{bounds}.")
    return value


def add_target(p: argparse.ArgumentParser) -> None:
    """`--target-size SIZE | --target-bpw X`: how big a file to make (one of them, required)."""
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--target-size", default=None, metavar="SIZE",
                   help="the largest file to write, metadata included: 250MB, 1.2GiB or bytes")
    g.add_argument("--target-bpw", default=None, metavar="X",  # text: the command checks it is finite
                   help="the same as bits per weight of the base's parameters (file bytes x 8 / parameters)")


def _rule_spec(v: str) -> tuple[str, str]:
    return ("rule", v)


def _file_spec(v: str) -> tuple[str, str]:
    return ("file", v)


def add_tensor_types(p: argparse.ArgumentParser) -> None:
    """llama-quantize's `--tensor-type PATTERN=TYPE` (repeatable), `--tensor-type-file FILE` and
    `--prune-layers L0,L1,...`; the rules keep the order they were given in (the first match wins)."""
    p.add_argument("--tensor-type", dest="tensor_type_specs", action="append", type=_rule_spec, default=None,
                   metavar="PATTERN=TYPE", help="ggml type for the tensors whose name matches the regular "
                   "expression PATTERN (repeatable; the first matching rule wins), e.g. attn_v=q8_0")
    p.add_argument("--tensor-type-file", dest="tensor_type_specs", action="append", type=_file_spec,
                   metavar="FILE", help="PATTERN=TYPE rules, one a line (llama-quantize's format)")
    p.add_argument("--prune-layers", default=None, metavar="L0,L1,...",
                   help="layers to leave out of the output (the rest are renumbered)")


def tensor_types(args: argparse.Namespace) -> tuple[list[Any], list[int]]:
    """The rules and pruned layers `add_tensor_types` collected (InputError for a bad one)."""
    from pathlib import Path

    from medcal_gui.quantize.tensor_types import parse_prune_layers, parse_tensor_type, read_tensor_type_file

    rules: list[Any] = []
    for kind, value in getattr(args, "tensor_type_specs", None) or []:
        if kind == "rule":
            rules.append(parse_tensor_type(value))
        else:
            rules += read_tensor_type_file(Path(value))
    prune = getattr(args, "prune_layers", None)
    return rules, parse_prune_layers(prune) if prune is not None else []
