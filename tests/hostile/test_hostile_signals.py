"""Class 5's signal rule on the real command line: every long-running command stops within 2 s of SIGTERM or
SIGINT, says so in one line, prints no traceback, leaves no process behind and leaves its output folder as it
was (no partial file, no .medcal-partial-*).

Each command runs on the tiny real model with inputs big enough for several seconds of work; the signal is
sent once its progress line shows it is working (and only if it is still running then)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from medcal_gui.cli.progress import GRACE_S, sigint_cancels
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.ownership import MARKER
from medcal_gui.core.resources import samples_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

STOP_WITHIN_S = 2.0
CANCELLED = re.compile(r"^medcal (?P<cmd>[\w-]+): (cancelled|error: Cancelled\b[^\n]*)$")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """One folder of inputs, each sized for more than 3 s of work on the tiny model."""
    from medcal_gui.calibrate.imatrix import compute_imatrix

    d = tmp_path_factory.mktemp("signal-inputs")
    sample = "".join(p.read_text(encoding="utf-8") for p in sorted(samples_dir().glob("*.txt")))
    (d / "text.txt").write_text(sample * 6, encoding="utf-8")  # ~90k tokens: imatrix, eval, pipeline
    (d / "narratives.txt").write_text(sample * 320, encoding="utf-8")  # 8 MB for format (2.4 s per 4 MB)
    compute_imatrix(tiny_model, [sample[:20000]], out=d / "imatrix.gguf", threads=1)  # IQ3_XXS needs one
    option = {"A": "Atrial fibrillation", "B": "Sinus rhythm", "C": "Atrial flutter", "D": "Junctional rhythm"}
    with open(d / "questions.jsonl", "w", encoding="utf-8") as fh:
        for i in range(3000):
            fh.write(json.dumps({"id": f"q{i}", "question": f"Case {i}: which rhythm is irregularly irregular?",
                                 "options": option, "answer": "A"}) + "\n")
    with open(d / "prompts.jsonl", "w", encoding="utf-8") as fh:
        for i in range(500):
            fh.write(json.dumps({"id": f"p{i}", "prompt": f"Summarise case {i}: 67 y/o, chest pain."}) + "\n")
    return d


@dataclass
class Case:
    args: Callable[[Path, Path], list[str]]  # (inputs, tiny model) -> the command line after `medcal`
    stage: str  # the progress stage whose first counted line says the work is under way


CASES: dict[str, Case] = {
    "imatrix": Case(lambda i, m: ["imatrix", "-m", str(m), "--calibration", str(i / "text.txt"), "-o",
                                  "tiny.imatrix.gguf"], "imatrix"),
    "eval": Case(lambda i, m: ["eval", "-b", str(m), "-m", str(m), "--text", str(i / "text.txt"), "--plot",
                               "kld.svg"], "eval"),
    "agree": Case(lambda i, m: ["agree", "-b", str(m), "-m", str(m), "-p", str(i / "prompts.jsonl"), "-n", "16",
                                "-d", "agreement"], "agree"),
    "mcq": Case(lambda i, m: ["mcq", "-m", str(m), "-m", str(m), "--questions", str(i / "questions.jsonl")], "mcq"),
    # IQ3_XXS with an imatrix: ~7 s for the tiny model, in the quantize child
    "quantize": Case(lambda i, m: ["quantize", "-m", str(m), "--type", "IQ3_XXS", "--imatrix",
                                   str(i / "imatrix.gguf"), "-o", "tiny-IQ3_XXS.gguf"], "quantize"),
    "format": Case(lambda i, m: ["format", str(i / "narratives.txt"), "-o", "calibration.txt"], "format"),
    "pipeline": Case(lambda i, m: ["pipeline", "--narratives", str(i / "text.txt"), "--model", str(m), "--type",
                                   "Q4_K_M", "-d", "pipeline-out"], "imatrix"),
}


def _listing(folder: Path) -> dict[str, str]:
    """Every path under `folder` with its sha256 (folders as "dir")."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _processes_with(tag: str) -> list[str]:
    """Processes whose environment carries `tag` (the command and every child it started)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if tag.encode() in env and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:200]!r}")
    return found


@dataclass
class Outcome:
    rc: int
    stop_s: float
    stderr: list[str]


def _run_and_signal(args: list[str], cwd: Path, stage: str, signals: list[signal.Signals], env: dict[str, str],
                    gap_s: float = 0.0) -> Outcome:
    tag = f"MEDCAL_SIGNAL_TEST={uuid.uuid4().hex}"
    env = {**env, "MEDCAL_SIGNAL_TEST": tag.split("=", 1)[1]}
    working = re.compile(rf"^{re.escape(stage)}: [1-9]\d*\b")
    lines: list[str] = []
    ready = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "medcal_gui", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if working.match(line):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(90), f"no '{stage}: N' progress line within 90 s:\n" + "\n".join(lines[-20:])
        time.sleep(0.3)  # well inside the work, not at the edge of its first step
        assert proc.poll() is None, "the command ended before the signal: make its input bigger\n" + "\n".join(lines)
        t0 = time.monotonic()
        for i, sig in enumerate(signals):
            if i:
                time.sleep(gap_s)
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=30)
        finally:
            stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    # a child that outlived its parent (an orphaned quantize child, say) would still carry the tag
    deadline = time.monotonic() + 1.0
    while (left := _processes_with(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of the cancelled run still alive: {left}"
    return Outcome(rc, stop_s, lines)


def _check_cancelled(name: str, out: Outcome) -> None:
    err = "\n".join(out.stderr)
    assert out.stop_s <= STOP_WITHIN_S, f"{name} took {out.stop_s:.2f} s to stop:\n{err}"
    assert out.rc == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    last = out.stderr[-1] if out.stderr else ""
    m = CANCELLED.match(last)
    assert m and m.group("cmd") == name, f"the last line is not a one-line cancel message: {last!r}\n{err}"


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    """The run's working folder, holding a file of the user's, and an empty evaluation cache."""
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own notes\n", encoding="utf-8")
    cache = tmp_path / "eval-cache"
    cache.mkdir()
    return out, cache


def _signal_case(name: str, sigs: list[signal.Signals], inputs: Path, tiny_model: Path, tmp_path: Path,
                 gap_s: float = 0.0) -> None:
    case = CASES[name]
    out, cache = _folder(tmp_path)
    before, inputs_before = _listing(out), _listing(inputs)
    env = {**os.environ, "MEDCAL_EVAL_CACHE": str(cache)}
    res = _run_and_signal(case.args(inputs, tiny_model), out, case.stage, sigs, env, gap_s)
    _check_cancelled(name, res)
    assert _listing(out) == before  # nothing partial, nothing new: not even an empty folder
    assert _listing(inputs) == inputs_before
    assert set(_listing(cache)) <= {MARKER}  # the cache's own marker at most: no entry from a cancelled pass
    leftovers = [f for folder in (out, inputs, cache, tiny_model.parent) for f in folder.rglob(f"{TMP_PREFIX}*")]
    assert not leftovers


@pytest.mark.parametrize("name", ["imatrix", "eval", "agree", "mcq", "quantize", "format", "pipeline"])
def test_sigterm_stops_within_2_s_and_leaves_nothing(name: str, inputs: Path, tiny_model: Path,
                                                     tmp_path: Path) -> None:
    _signal_case(name, [signal.SIGTERM], inputs, tiny_model, tmp_path)


@pytest.mark.parametrize("name", ["imatrix", "quantize", "agree"])
def test_sigint_stops_within_2_s_and_leaves_nothing(name: str, inputs: Path, tiny_model: Path,
                                                    tmp_path: Path) -> None:
    _signal_case(name, [signal.SIGINT], inputs, tiny_model, tmp_path)


@pytest.mark.parametrize("name", ["imatrix", "mcq"])
def test_a_double_ctrl_c_cancels_once_without_a_traceback(name: str, inputs: Path, tiny_model: Path,
                                                          tmp_path: Path) -> None:
    """Ctrl-C twice in quick succession: the second one used to raise KeyboardInterrupt inside llama.cpp's
    abort or log callback, which ctypes printed as a traceback ("Exception ignored on calling ctypes callback
    function") - or inside the clean-up that removes the partial files."""
    _signal_case(name, [signal.SIGINT, signal.SIGINT], inputs, tiny_model, tmp_path, gap_s=0.01)


def test_a_late_second_signal_inside_a_c_callback_aborts_without_a_traceback(
        capfd: pytest.CaptureFixture[str]) -> None:
    """A job stuck past the grace time: the second Ctrl-C aborts it at once, even when it arrives while C code
    is calling back into Python (a real C callback: libc's qsort calling a Python comparison)."""
    libc = ctypes.CDLL(None)
    compare_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    in_callback: list[bool] = []

    def compare(a: ctypes._Pointer[ctypes.c_int], b: ctypes._Pointer[ctypes.c_int]) -> int:
        if not in_callback:
            in_callback.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs at the next line: here, inside the callback
        return int(a[0]) - int(b[0])

    token = CancelToken()
    reached = "before the C call"
    with pytest.raises(KeyboardInterrupt), sigint_cancels(token):
        token.cancel()
        assert token.cancelled_at is not None
        token.cancelled_at -= GRACE_S + 1  # cancelled long ago, and still running
        values = (ctypes.c_int * 64)(*range(64, 0, -1))
        libc.qsort(values, 64, ctypes.sizeof(ctypes.c_int), compare_t(compare))
        reached = "after the C call"  # the interrupt raised in the callback could not leave it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # it is delivered again here, in our own code
            time.sleep(0.01)
        reached = "the end: the interrupt was lost"
    assert in_callback and reached == "after the C call"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.timeout(60)
def test_sigterm_outside_a_job_ends_the_command_with_its_cancel_line(tiny_model: Path, tmp_path: Path) -> None:
    """`kill PID` while a command waits outside a job (here chat at its prompt, waiting for a line) used to end
    it by the default action: exit -15, not a word said."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medcal_gui", "chat", "--model", str(tiny_model)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the prompt's banner: it now waits on standard input
            if line.startswith("chatting with "):
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 130, (rc, err)
    assert took < STOP_WITHIN_S
    assert err.strip().splitlines()[-1] == "medcal chat: cancelled" and "Traceback" not in err
