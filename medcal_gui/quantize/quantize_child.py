"""The two places `llama_model_quantize` runs: in-process (`run_quantize`, used for the quick dry run) and
in a child process (`main`, started by `start_child`), because the real run cannot be interrupted any other
way.

The child is a fresh `python -m medcal_gui.quantize.quantize_child PARENT_PID` (no multiprocessing: no
resource-tracker process, no re-import of the parent's `__main__`), started early so that its start-up
overlaps the parent's preparations. It binds libllama through quantize_ctypes alone (no numpy, no
llama-cpp-python package): ready about 0.01 s after its interpreter starts, where importing llama_cpp took
0.14 s. The parent writes `pickle(job)` to its stdin (nothing: no job, exit); the child answers on its
stdout with JSON lines `["log", level, line]`, then `["versions", {...}]` (what the manifest records) and
finally `["done", rc]`.
The child dies with its parent: on Linux through prctl(PR_SET_PDEATHSIG, SIGKILL), everywhere through a
thread that polls the parent's pid, so a `kill -9` of `medcal quantize` (or of the GUI) stops the writing.
Keep this module light: the child imports it fresh, and only it (plus quantize_ctypes, libc, log_lines and
versions).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PARENT_POLL_S = 0.25
CHILD_FLAG = "--medcal-quantize-child"  # how a frozen bundle's executable is told to be the child (cli.main)


@dataclass
class QuantizeJob:
    """Everything `llama_model_quantize` needs, in picklable form."""

    model: str
    out: str
    ftype: int
    nthread: int
    allow_requantize: bool
    pure: bool
    dry_run: bool
    output_tensor_type: int | None
    token_embedding_type: int | None
    imatrix: Mapping[str, bytes] | None  # per weight, its importance values as little-endian float32
    kv_overrides: Sequence[tuple[str, int | str]]
    tt_overrides: Sequence[tuple[str, int]] = ()  # (regex, ggml type id), first match wins
    prune_layers: Sequence[int] = ()


def run_quantize(job: QuantizeJob, on_line: Callable[[int, str], None]) -> int:
    """Run llama_model_quantize here, passing every complete log line to `on_line`; returns its code."""
    from medcal_gui.llama.log import add_line_listener, flush_pending, route_llama_logs

    route_llama_logs()
    remove = add_line_listener(on_line)
    try:
        rc = _quantize(job)
        flush_pending()
        return rc
    finally:
        remove()


def _quantize(job: QuantizeJob) -> int:
    from medcal_gui.llama import quantize_ctypes as qc

    qa = qc.quantize_params(
        ftype=job.ftype, nthread=job.nthread, allow_requantize=job.allow_requantize, pure=job.pure,
        dry_run=job.dry_run, output_tensor_type=job.output_tensor_type,
        token_embedding_type=job.token_embedding_type, imatrix=job.imatrix, kv_overrides=job.kv_overrides,
        tt_overrides=job.tt_overrides, prune_layers=job.prune_layers,
    )
    return qc.model_quantize(Path(job.model), Path(job.out), qa)


def child_command() -> list[str]:
    """The command line that starts the child: the same interpreter with this module as the script, or, in a
    stand-alone bundle (no interpreter to hand), the bundle's executable with CHILD_FLAG."""
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG, str(os.getpid())]
    return [sys.executable, "-X", "faulthandler", "-m", "medcal_gui.quantize.quantize_child", str(os.getpid())]


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as `parent_pid` is gone, whatever it is doing (llama.cpp holds the GIL
    only briefly, so the watcher thread runs while a tensor is being quantized)."""
    import signal
    import threading
    import time

    from medcal_gui.llama.libc import set_parent_death_signal

    set_parent_death_signal(signal.SIGKILL)  # where it cannot (not Linux), the polling thread below works

    def gone() -> bool:
        return os.getppid() != parent_pid

    if gone():  # the parent died before prctl took effect
        os._exit(137)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if gone():
                os._exit(137)

    threading.Thread(target=watch, name="medcal-parent-watch", daemon=True).start()


def main() -> int:
    """Entry point of the child process."""
    import json
    import pickle
    import signal
    import threading

    # Ctrl-C in a terminal reaches the whole process group: the parent decides, and terminates this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(int(sys.argv[-1]))
    # Load llama.cpp while the parent prepares the job (it starts this process early), then wait for it. The
    # versions the manifest records are read on the side (importlib.metadata alone takes 20 ms).
    from medcal_gui.llama import quantize_ctypes as qc
    from medcal_gui.llama.log_lines import LineJoiner
    from medcal_gui.llama.versions import manifest_versions

    versions: dict[str, str] = {}
    versions_thread = threading.Thread(target=lambda: versions.update(manifest_versions()), daemon=True)
    versions_thread.start()
    payload = sys.stdin.buffer.read()
    if not payload:  # the parent decided not to run a job after all
        return 0
    job = pickle.loads(payload)
    # Messages go to a private copy of stdout; anything the libraries print lands on stderr instead.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()  # llama.cpp's worker threads may log too

    def send(*msg: object) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")

    joiner = LineJoiner()  # whole lines, per thread

    def on_log(level: int, raw: bytes) -> None:
        for lv, line in joiner.feed(level, raw):
            send("log", lv, line)

    callback = qc.make_log_callback(on_log)  # referenced until this process ends
    qc.set_log_callback(callback)
    rc = 1
    try:
        rc = _quantize(job)
        for lv, line in joiner.flush():
            send("log", lv, line)
        versions_thread.join()
        send("versions", versions)  # the versions of the libraries that wrote the file, for its manifest
    except BaseException as exc:  # report, then exit non-zero
        send("log", 4, f"medcal quantize child: {type(exc).__name__}: {exc}")
    finally:
        send("done", rc)
        out.flush()
    # The file is closed and reported: end now. An interpreter shutdown with llama.cpp loaded (module teardown,
    # its atexit hooks, freeing the model's pages) took 64 ms that the parent waited for before hashing.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
