"""Run the GUI test suite N times in a row, each in a fresh process, and count the crashes.

    python bench/repeat_ui_tests.py -n 30 [--python PY] [-- extra pytest args]

Prints, per run, its exit status and time; for each crash the signal or the "Fatal Python error" line (and
the frame line under it); then crashes/N, the PySide6 version and whether torch was imported in the runs
(torch, loaded by the Hugging Face tests, changes the interpreter's heap and reference counts). A run counts
as a crash when pytest died from a signal or printed "Fatal Python error"; test failures are counted apart.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a conftest-free probe, run by the same interpreter and path as the tests
PROBE = ("import PySide6, importlib.util as u; print(PySide6.__version__, "
         "'torch-installed' if u.find_spec('torch') else 'no-torch')")
# pytest's own plugin hook: report at the end of the session whether torch got imported by the tests
TORCH_PLUGIN = """
import gc, sys, threading
_start = {}
_gc_runs = {"gui": 0, "worker": 0}
def _on_gc(phase, info):
    if phase == "start":
        _gc_runs["gui" if threading.current_thread() is threading.main_thread() else "worker"] += 1
def pytest_configure(config):
    _start.update(none=sys.getrefcount(None), true=sys.getrefcount(True))
    gc.callbacks.append(_on_gc)
def pytest_unconfigure(config):
    print("\\nrepeat_ui_tests: torch imported:", "torch" in sys.modules, flush=True)
    print("repeat_ui_tests: refcount drift None %+d True %+d" % (sys.getrefcount(None) - _start["none"],
          sys.getrefcount(True) - _start["true"]), flush=True)
    print("repeat_ui_tests: collections gui %(gui)d worker %(worker)d" % _gc_runs, flush=True)
    # what a child started now would inherit: ignored and blocked signals survive exec
    sig = [ln for ln in open("/proc/self/status").read().splitlines() if ln.startswith(("SigBlk", "SigIgn"))]
    print("repeat_ui_tests: signals", " ".join(sig), flush=True)
"""


def crash_lines(out: str) -> list[str]:
    lines = out.splitlines()
    found = []
    for i, ln in enumerate(lines):
        if ln.startswith("Fatal Python error"):
            nxt = next((x.strip() for x in lines[i + 1:i + 8] if x.strip().startswith(("File", "Garbage"))), "")
            found.append(ln.strip() + (f" | {nxt}" if nxt else ""))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=10)
    ap.add_argument("--python", default=sys.executable, help="interpreter to run pytest with")
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds per run; a run past it counts as a hang (the stop check allows 35)")
    ap.add_argument("--logs", type=Path, default=None,
                    help="folder for the full output of every run that crashed or failed (default: none kept)")
    ap.add_argument("pytest_args", nargs="*", default=["tests/ui"])
    args = ap.parse_args(argv)

    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    plugin_dir = Path(tempfile.mkdtemp(prefix="medcal-repeat-"))
    (plugin_dir / "repeat_torch_probe.py").write_text(TORCH_PLUGIN)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(plugin_dir), env.get("PYTHONPATH", ""), str(REPO)) if x)
    probe = subprocess.run([args.python, "-c", PROBE], env=env, capture_output=True, text=True, cwd=REPO)
    version = probe.stdout.strip() or probe.stderr.strip().splitlines()[-1]
    print(f"PySide6 {version}; python {args.python}; {args.runs} runs of pytest {' '.join(args.pytest_args)}")

    crashes, failures, times, torch_seen = 0, 0, [], set()
    try:
        for i in range(1, args.runs + 1):
            t0 = time.monotonic()
            cmd = [args.python, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "-p", "repeat_torch_probe", *args.pytest_args]
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=args.timeout)
                rc, out = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as exc:
                rc, out = -1, f"timed out after {args.timeout} s\n" + str(exc.stdout or "")
            dt = time.monotonic() - t0
            times.append(dt)
            drift = re.search(r"refcount drift (None \S+ True \S+)", out)
            gcs = re.search(r"collections (gui \d+ worker \d+)", out)
            sigs = re.search(r"repeat_ui_tests: signals (.*)", out)
            m = re.search(r"torch imported: (True|False)", out)
            if m:
                torch_seen.add(m.group(1) == "True")
            fatal = crash_lines(out)
            summary = next((ln for ln in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed)", ln)), "")
            if args.logs is not None and (rc != 0 or fatal):
                args.logs.mkdir(parents=True, exist_ok=True)
                (args.logs / f"run-{i:02d}.log").write_text(out)
            if rc < 0 or fatal:
                crashes += 1
                why = f"signal {signal.Signals(-rc).name}" if rc < -1 else ("timeout" if rc == -1 else f"rc {rc}")
                print(f"run {i:2}: CRASH ({why}) in {dt:.0f} s: " + ("; ".join(fatal) or "no fatal-error line"))
            else:
                if rc != 0:
                    failures += 1
                print(f"run {i:2}: rc {rc} in {dt:.0f} s: {summary.strip('= ')}"
                      + (f" (refcount drift {drift.group(1)})" if drift else "")
                      + (f" (gc runs: {gcs.group(1)})" if gcs else "")
                      + (f" ({sigs.group(1)})" if sigs else ""))
            sys.stdout.flush()
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)
    torch = "yes" if torch_seen == {True} else "no" if torch_seen == {False} else "mixed" if torch_seen else "?"
    mean = sum(times) / len(times) if times else 0.0
    print(f"crashes {crashes}/{args.runs}; runs with failing tests {failures}; PySide6 {version.split()[0]}; "
          f"torch imported: {torch}; mean run {mean:.0f} s, longest {max(times, default=0.0):.0f} s")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
