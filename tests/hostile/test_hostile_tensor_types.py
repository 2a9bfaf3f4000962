"""`medcal quantize --tensor-type / --tensor-type-file / --prune-layers / --imatrix` on hostile and unlucky
inputs (issue 25, classes 5 and 7).

Real `medcal quantize` processes on the real tiny GGUF, real FIFOs (os.mkfifo), /dev/zero, real files over
the limits and real signals with the time to stop measured. Each refusal is one line naming the flag (or the
file and line) and what to write instead, comes before the quantize child does anything, in seconds, and
leaves the output folder empty. A pattern medcal accepts is one llama.cpp's std::regex reads alike and
matches in bounded time; a type it accepts is one llama.cpp can write.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest

import medcal_gui
from medcal_gui.core.errors import InputError
from medcal_gui.quantize.tensor_patterns import MAX_WAYS, check_pattern
from medcal_gui.quantize.tensor_types import ggml_type_names, parse_tensor_type

# the package under test, wherever it is imported from (so this file can be run against another checkout)
SRC = Path(medcal_gui.__file__).resolve().parent.parent
VALID = ("Valid types: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq2_xxs, iq2_xs, "
         "iq3_xxs, iq1_s, iq4_nl, iq3_s, iq2_s, iq4_xs, iq1_m, bf16, tq1_0, tq2_0, mxfp4, nvfp4, q1_0, q2_0.")
IDEAS = ("Write the repeat once on a character or a class instead, e.g. '.*' or '[a-z_]*'; a leading or trailing "
         "'.*' is never needed, since llama.cpp searches the pattern anywhere in the name.")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(SRC))


def _cmd(model: Path, out: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "medcal_gui", "quantize", "-m", str(model), "--type", "Q4_K_M", "-o", str(out),
            *(str(a) for a in args)]


def quantize(model: Path, out: Path, *args: str | Path, timeout: float = 60) -> tuple[int, str, str, float]:
    """`medcal quantize` in a real process: exit code, stdout, stderr, seconds. A run that outlives `timeout`
    (a hang) is killed and fails the test."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(_cmd(model, out, *args), capture_output=True, text=True, env=_env(), cwd=SRC,
                           timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"medcal quantize {' '.join(map(str, args))[:200]} still ran after {timeout} s")
    return r.returncode, r.stdout, r.stderr, time.monotonic() - t0


def refused(model: Path, folder: Path, *args: str | Path, within_s: float = 20) -> str:
    """The one-line refusal of `medcal quantize ... ARGS`, checked to come at once and leave `folder` empty."""
    rc, out, err, took = quantize(model, folder / "q.gguf", *args)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("medcal quantize: error: "), (rc, out, err)
    assert "Traceback" not in err and "Inferior" not in err
    assert took < within_s, took
    assert list(folder.iterdir()) == [], "a refused quantize left something behind"
    return lines[0].removeprefix("medcal quantize: error: ")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


# --- class 5: patterns whose matching time has no bound ---------------------------------------------------

def test_the_catastrophic_pattern_of_the_issue_is_refused_at_once(tiny_model: Path, folder: Path) -> None:
    # it ran for 11 minutes (Python's re in the parent, then llama.cpp's std::regex) and ignored SIGTERM
    msg = refused(tiny_model, folder, "--tensor-type", "(.*.*.*.*)*z=q8_0", within_s=10)
    assert msg == ("--tensor-type: the pattern '(.*.*.*.*)*z' repeats a group that itself holds a repeat or a '|' "
                   "(like '(.*)*' or '(a|b)+'): llama.cpp tries every way of splitting the name between them, "
                   "which can take hours. " + IDEAS)


def test_python_possessive_repeat_that_hangs_llama_cpp_is_refused(tiny_model: Path, folder: Path) -> None:
    # Python reads a*+ as possessive (instant); libstdc++ as (a*)+, which did not end on a 64-character name
    msg = refused(tiny_model, folder, "--tensor-type", "a*+z=q8_0")
    assert msg == ("--tensor-type: the pattern 'a*+z' repeats a repeat ('*+'): llama.cpp reads it as a repeated "
                   "group, which can take hours to match, and Python as something else. " + IDEAS)


def test_too_many_repeats_in_one_pattern_are_refused_from_a_file(tiny_model: Path, folder: Path,
                                                                 tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("attn_v=q8_0\n.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?z=q8_0\n", encoding="utf-8")
    msg = refused(tiny_model, folder, "--tensor-type-file", rules)
    assert msg.startswith(f"{rules}, line 2: the pattern '.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?.?z' can match a "
                          "tensor name in too many ways (about 3.2e+32; the limit is 262,144) and llama.cpp tries "
                          "them one by one, for every tensor. Use at most three repeats (*, +, ?, {m,n}), fewer "
                          "with groups of alternatives (a|b). ")


@pytest.mark.parametrize("pattern,says", [
    ("(a+)+", "repeats a group that itself holds a repeat or a '|'"),
    ("(attn|ffn)*_v", "repeats a group that itself holds a repeat or a '|'"),
    ("(.|.)(.|.)(.|.)(.|.)z", "can match a tensor name in too many ways (about 2.7e+08"),
    ("a{100000}", "repeats {100000} times: a tensor name has at most 63 characters, so write counts of at most 64"),
    ("[]a]", "starts a class with ']' ('[]' or '[^]'), which llama.cpp reads as an empty class"),
    ("[[:digit:]]", "uses a POSIX class"),
    ("a{,3}", "has a '{' that is not a repeat count"),
    ("blk\x00v", "holds a control character ('\\x00')"),
    ("attn_vé", "holds a non-ASCII character ('é')"),
    ("(" * 500 + "a" + ")" * 500, "nests groups too deeply to read; simplify it"),
    ("x" * 1025, "the pattern is 1,025 characters long; medcal takes at most 1,024"),
])
def test_each_unbounded_or_misread_shape_is_refused_by_name(pattern: str, says: str) -> None:
    with pytest.raises(InputError) as e:
        parse_tensor_type(f"{pattern}=q8_0")
    assert e.value.message.startswith("--tensor-type: ") and says in e.value.message, e.value.message


NORMAL = [
    "attn_v", r"blk\.0\.ffn_down", r"^blk\.[0-9]+\.attn_.*\.weight$", "ffn_(up|gate)", r"blk\.\d+\.ffn_down",
    r"blk\.(0|1|2|3|10|11)\.attn_(q|k|v)", ".*attn.*v.*", r"(blk\.\d+\.)?attn_v", r"\.weight$", r"^output\.",
    r"blk\.[0-9]{1,2}\.ffn_.*", "token_embd", r"attn_[qkv]\.weight", r"blk\.1?[05]\.attn",
    r"^blk\.(" + "|".join(map(str, range(48))) + r")\.ffn_down\.weight$",
]


def test_normal_patterns_are_accepted_and_the_worst_accepted_keep_llama_cpp_quick(
        tiny_model: Path, folder: Path, tmp_path: Path) -> None:
    for p in NORMAL:
        assert parse_tensor_type(f"{p}=q8_0").pattern == p.lower()
    # the most costly shapes medcal lets through, run by llama.cpp itself on every tensor name (twice: the
    # size estimate's matching beside the real run's): seconds, not hours
    worst = [".*.*.*z=q8_0", "(" + "|".join([".*"] * 32) + ")z=q8_0"]
    assert [check_pattern(w.rsplit("=", 1)[0]) for w in worst] == [MAX_WAYS, MAX_WAYS // 2]
    rules = tmp_path / "worst.txt"
    rules.write_text("\n".join(worst + ["attn_v=q8_0"]) + "\n", encoding="utf-8")
    rc, out, err, took = quantize(tiny_model, folder / "q.gguf", "--tensor-type-file", rules, timeout=120)
    assert rc == 0, err
    assert took < 60
    assert {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(folder / "q.gguf")).tensors
            }["blk.0.attn_v.weight"] == "Q8_0"


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                alive.append(int(entry))
    return alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_issue_pattern_and_a_signal_leave_no_process_after_2_s(tiny_model: Path, tmp_path: Path,
                                                                  signum: signal.Signals) -> None:
    """The run of the issue, as a user lived it: started, then a signal 1.5 s later (when it had not
    answered). Its signal handler only set a flag that the matching never looked at: it ran on for 11
    minutes. Now it has ended (refused) by then, or ends within 2 s of the signal, leaving nothing."""
    proc = subprocess.Popen(_cmd(tiny_model, tmp_path / "q.gguf", "--tensor-type", "(.*.*.*.*)*z=q8_0"),
                            env=_env(), cwd=SRC, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(1.5)
        if proc.poll() is None:
            os.killpg(proc.pid, signum) if signum == signal.SIGINT else os.kill(proc.pid, signum)
        try:
            _out, err = proc.communicate(timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 2 s after {signum.name}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert _group_alive(proc.pid) == []
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in err


def _complete(gguf: Path) -> bool:
    """Whether `gguf` and its sidecars are all there, whole: the .sha256 names the file's own digest."""
    names = sorted(p.name for p in gguf.parent.iterdir())
    if names != [gguf.name, gguf.name + ".manifest.json", gguf.name + ".sha256"]:
        return False
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    return (gguf.parent / (gguf.name + ".sha256")).read_text(encoding="utf-8").split()[0] == digest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_rules_are_read_checked_and_matched_stops_it_within_2_s(
        tiny_model: Path, tmp_path: Path, signum: signal.Signals) -> None:
    """10,000 rules (as a recipe writes one per tensor): reading, checking and matching them takes about two
    seconds. A signal at any moment of that stops everything within 2 s, child included, leaving nothing."""
    rules = tmp_path / "rules.txt"
    rules.write_text("".join(f"^blk\\.{i}\\.attn_v\\.weight$=q8_0\n" for i in range(10_000)), encoding="utf-8")
    caught = 0
    for delay in (0.4, 0.8, 1.2, 1.6):
        out = tmp_path / f"after-{delay}"
        out.mkdir()
        proc = subprocess.Popen(_cmd(tiny_model, out / "q.gguf", "--tensor-type-file", rules), env=_env(),
                                cwd=SRC, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            time.sleep(delay)
            if proc.poll() is not None:  # done before the signal: nothing to measure at this delay
                continue
            # Ctrl-C reaches the whole process group, `kill PID` the command alone
            os.killpg(proc.pid, signum) if signum == signal.SIGINT else os.kill(proc.pid, signum)
            t0 = time.monotonic()
            try:
                _stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{signum.name} at {delay} s: still running 10 s later")
            took = time.monotonic() - t0
            left = _group_alive(proc.pid)
            deadline = time.monotonic() + 1
            while left and time.monotonic() < deadline:
                time.sleep(0.02)
                left = _group_alive(proc.pid)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        if proc.returncode == 0 or _complete(out / "q.gguf"):  # it finished (its outputs renamed into place, the
            continue  # digest written) in the moment between poll() and the signal: a signal came too late
        caught += 1
        print(f"{signum.name} at {delay} s: stopped in {took:.2f} s, exit {proc.returncode}")
        assert took < 2.0, f"{signum.name} at {delay} s: stopped after {took:.2f} s"
        # before the handler is set (reading the rules) SIGTERM's default ends it; after, it cancels
        assert proc.returncode in ((130, -signal.SIGTERM) if signum == signal.SIGTERM else (130,)), stderr
        assert "Traceback" not in stderr
        assert left == [], f"{signum.name} at {delay} s: processes {left} outlived the command"
        assert list(out.iterdir()) == [], f"{signum.name} at {delay} s left {list(out.iterdir())}"
    assert caught >= 2, "the run ended before the signals: no stop time was measured"


# --- class 5: inputs read without end --------------------------------------------------------------------

def test_a_fifo_as_the_tensor_type_file_is_refused_without_waiting(tiny_model: Path, folder: Path,
                                                                   tmp_path: Path) -> None:
    fifo = tmp_path / "rules.fifo"
    os.mkfifo(fifo)
    msg = refused(tiny_model, folder, "--tensor-type-file", fifo, within_s=10)
    assert msg == f"The tensor type file {fifo} is a named pipe (FIFO), not a file: give a text file."


def test_dev_zero_as_the_tensor_type_file_is_refused_before_reading(tiny_model: Path, folder: Path) -> None:
    msg = refused(tiny_model, folder, "--tensor-type-file", "/dev/zero", within_s=10)
    assert msg == "The tensor type file /dev/zero is a device, not a file: give a text file."


def test_a_fifo_or_a_device_as_the_imatrix_or_the_model_is_refused(tiny_model: Path, folder: Path,
                                                                   tmp_path: Path) -> None:
    fifo = tmp_path / "imatrix.fifo"
    os.mkfifo(fifo)
    msg = refused(tiny_model, folder, "--imatrix", fifo, within_s=10)
    assert msg == f"The importance matrix {fifo} is a pipe (FIFO), not a file: give a regular file."
    msg = refused(tiny_model, folder, "--imatrix", "/dev/zero", within_s=10)
    assert msg == "The importance matrix /dev/zero is a device, not a file: give a regular file."
    msg = refused(fifo, folder, within_s=10)
    assert msg == f"The model file {fifo} is a pipe (FIFO), not a file: give a regular file."


def test_tensor_type_files_over_the_limits_are_refused_naming_file_and_line(tiny_model: Path, folder: Path,
                                                                            tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(5 * 1024 * 1024)  # sparse: 5 MiB of NULs, never read
    assert refused(tiny_model, folder, "--tensor-type-file", big) == (
        f"The tensor type file {big} is 5 MB; medcal reads at most 4 MB of it. Is it the right file?")
    long_line = tmp_path / "long.txt"
    long_line.write_text("attn_v=q8_0\n" + "a" * 5000 + "=q8_0\n", encoding="utf-8")
    assert refused(tiny_model, folder, "--tensor-type-file", long_line) == (
        f"{long_line}, line 2: the line is 5,005 characters long; medcal reads lines of at most 4,096 (one "
        "PATTERN=TYPE rule, a pattern of at most 1,024 characters). Split it into several rules.")
    lines = tmp_path / "lines.txt"
    lines.write_text("attn_v=q8_0" + "\n" * 100_000, encoding="utf-8")
    assert refused(tiny_model, folder, "--tensor-type-file", lines) == (
        f"The tensor type file {lines} has 100,001 lines; medcal reads at most 100,000 (one PATTERN=TYPE rule a "
        "line). Is it the right file?")
    many = tmp_path / "many.txt"
    many.write_text("".join(f"^blk\\.{i}\\.=q8_0\n" for i in range(10_001)), encoding="utf-8")
    assert refused(tiny_model, folder, "--tensor-type-file", many) == (
        f"{many}, line 10001: the file holds more than 10,000 rules, medcal's limit (one per tensor is enough for "
        "the largest models). Is it the right file?")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert refused(tiny_model, folder, "--tensor-type-file", empty) == (
        f"The tensor type file {empty} holds no PATTERN=TYPE rule, so llama-quantize would apply none. Write one "
        "rule a line (e.g. attn_v=q8_0), or leave the file out.")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"attn_v=q8_0\nffn_\xe9=q8_0\n")
    assert refused(tiny_model, folder, "--tensor-type-file", latin1) == (
        f"The tensor type file {latin1} is not UTF-8 (line 2, byte 16).")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"attn_v=q8_0\nffn\x00up=q8_0\n")
    assert refused(tiny_model, folder, "--tensor-type-file", nul) == (
        f"{nul}, line 2: the pattern 'ffn\\x00up' holds a control character ('\\x00'): tensor names are ASCII and "
        "llama.cpp matches bytes (a NUL ends its pattern), so it would not read it as medcal does. Use ASCII "
        "characters only.")


def test_prune_layers_out_of_bounds_are_refused(tiny_model: Path, folder: Path) -> None:
    many = ",".join(map(str, range(20_000)))  # as many as one argument can hold (128 KiB)
    assert refused(tiny_model, folder, "--prune-layers", many) == (
        "--prune-layers: 20,000 layer numbers; a model has at most 512 layers (llama.cpp's limit). Give each "
        "layer to leave out once, e.g. 0,1,2.")
    assert refused(tiny_model, folder, "--prune-layers", "99999999999999999999") == (
        "--prune-layers: '99999999999999999999' is not a layer number: give the layers to leave out as whole "
        "numbers, e.g. 0,1,2.")
    assert refused(tiny_model, folder, "--prune-layers", ",".join(map(str, range(2, 400)))) == (
        "--prune-layers: tiny-gemma3-f32.gguf has 2 layers (0-1); there is no layer 2, 3, 4, 5, 6 and 393 more.")


# --- class 7: wrong acceptance --------------------------------------------------------------------------

@pytest.mark.parametrize("qtype", ["i32", "i8", "i16", "i64", "f64", "q8_1", "Q8_K"])
def test_a_type_llama_cpp_cannot_write_is_refused_before_the_child_runs(tiny_model: Path, folder: Path,
                                                                        qtype: str) -> None:
    # `attn_v=i32` was accepted; the child then aborted with "[Inferior 1 ... detached]"
    assert refused(tiny_model, folder, "--tensor-type", f"attn_v={qtype}") == (
        f"--tensor-type: {qtype!r} is a ggml type llama.cpp cannot quantize a tensor to (in the rule "
        f"'attn_v={qtype}'): it has no writer for it and the run would abort. " + VALID)


def test_bad_types_in_a_file_and_in_the_output_flags_name_where(tiny_model: Path, folder: Path,
                                                                tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("attn_v=q8_0\n\nffn_down=I32\n", encoding="utf-8")
    assert refused(tiny_model, folder, "--tensor-type-file", rules) == (
        f"{rules}, line 3: 'I32' is a ggml type llama.cpp cannot quantize a tensor to (in the rule "
        "'ffn_down=I32'): it has no writer for it and the run would abort. " + VALID)
    assert refused(tiny_model, folder, "--output-tensor-type", "f64") == (
        "--output-tensor-type: 'f64' is a ggml type llama.cpp cannot quantize a tensor to: it has no writer for "
        "it and the run would abort. " + VALID)
    assert refused(tiny_model, folder, "--token-embedding-type", "q9_9") == (
        "--token-embedding-type: 'q9_9' is not a ggml tensor type. " + VALID)


@pytest.mark.parametrize("rule,msg", [
    ("=q4_k", "--tensor-type: '=q4_k' has no tensor name pattern before '=', e.g. attn_v=q8_0."),
    ("attn_v", "--tensor-type: 'attn_v' is not PATTERN=TYPE (no '='), e.g. attn_v=q8_0."),
    ("attn_v=", "--tensor-type: 'attn_v=' has no type after '=', e.g. attn_v=q8_0."),
])
def test_malformed_rules_are_refused_as_llama_quantize_does(tiny_model: Path, folder: Path, rule: str,
                                                            msg: str) -> None:
    assert refused(tiny_model, folder, "--tensor-type", rule) == msg


def test_a_pattern_given_twice_with_two_types_is_refused_naming_both(tiny_model: Path, folder: Path,
                                                                     tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("ffn_up=q8_0\nATTN_V=q5_k\n", encoding="utf-8")
    # llama-quantize lowercases patterns: ATTN_V in the file is attn_v; it would use the first, silently
    assert refused(tiny_model, folder, "--tensor-type", "attn_v=q8_0", "--tensor-type-file", rules) == (
        f"{rules}, line 2: the rule 'attn_v=q5_K' repeats the pattern of 'attn_v=q8_0' (--tensor-type) with "
        "another type; llama.cpp uses the first rule that matches and would ignore this one. Keep one of them.")


def test_type_case_is_free_and_the_same_rule_twice_only_warns(tiny_model: Path, folder: Path) -> None:
    """llama-quantize names types case-insensitively (striequals): Q8_0 is q8_0. The same rule twice changes
    nothing, as in llama.cpp; medcal says the second sets nothing."""
    assert "q8_0" in ggml_type_names()
    rc, out, err, _ = quantize(tiny_model, folder / "q.gguf", "--tensor-type", "attn_v=Q8_0", "--tensor-type",
                               "attn_v=q8_0")
    assert rc == 0, err
    assert ("The tensor type rule attn_v=q8_0 sets no tensor: the 2 tensor(s) it matches are all taken by an "
            "earlier rule (the first matching rule wins). Move it up or drop it.") in out + err
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(folder / "q.gguf")).tensors}
    assert types["blk.0.attn_v.weight"] == types["blk.1.attn_v.weight"] == "Q8_0"


def test_prune_layers_refuses_what_std_stoi_would_misread(tiny_model: Path, folder: Path) -> None:
    # llama-quantize reads "1e3" as layer 1 and "0.5" as layer 0: a typo silently removed a layer
    for text in ("1e3", "0.5", "1x"):
        assert refused(tiny_model, folder, "--prune-layers", text) == (
            f"--prune-layers: {text!r} is not a layer number: give the layers to leave out as whole numbers, "
            "e.g. 0,1,2.")
