"""Running `llama_model_quantize` in its child process (quantize_child) and reading its log.

`run_child` starts the child, feeds it the job, turns its per-tensor log lines ("[  12/ 236] blk.0...")
into progress through a `LogWatch`, and terminates it on cancel: the child is gone whenever `run_child`
returns or raises. `LogWatch.explain` turns llama.cpp's error lines into one plain-words message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from medcal_gui.core.errors import Cancelled
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter
from medcal_gui.core.units import MiB, format_bytes
from medcal_gui.quantize.quantize_child import QuantizeJob, child_command

log = logging.getLogger("medcal_gui.quantize.quantize")
llama_log = logging.getLogger("medcal_gui.llama.quantize")

# llama-quant.cpp's line per tensor: "[  12/ 236] blk.0.attn_k.weight - [   640,    256,      1,      1], type =
#    f16, " then, in a real run, "converting to q4_K .. size = ..." or, in a dry run, "size =     0.31 MiB ->
#    0.09 MiB (q4_K)"; a tensor kept as it is ends "size = 0.002 MiB" (no new type).
TENSOR_LINE = re.compile(r"^\[\s*(?P<done>\d+)/\s*(?P<total>\d+)\]\s+(?P<name>\S+)"
                         r"(?:\s+-\s+\[(?P<shape>[\d,\s]+)\](?:,\s+type =\s+(?P<type>\w+),"
                         r"\s+size =[^(]*(?:\((?P<new_type>\w+)\))?\s*$)?)?")
SIZE_LINE = re.compile(r"(model|quant) size\s*=\s*([0-9.]+) MiB")
FALLBACK_LINE = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")
MISSING_LINE = re.compile(r"Missing importance matrix for tensor (\S+)")


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _disk_full(out: Path) -> bool:
    """Whether `out`'s folder has (next to) no room left: how a failed write there is best explained."""
    return shutil.disk_usage(_existing(out.parent)).free < 2 * MiB


class LogWatch:
    """Collects what matters from llama.cpp's quantize log and turns tensor lines into progress."""

    def __init__(self, progress: ProgressCallback, stage: str, has_imatrix: bool = False) -> None:
        self.progress = progress
        self.stage = stage
        self.has_imatrix = has_imatrix
        self.meter = RateMeter()
        self.done = 0
        self.total = 0
        self.sizes: dict[str, float] = {}
        self.errors: list[str] = []
        self.fallback: tuple[int, int] | None = None
        self.needs_imatrix = False  # llama.cpp will refuse (a dry run) or refused (a real run) without one
        self.matrices: list[str] = []  # names of the 2-D (or more) tensors, in the file's order
        self.tensor_lines: list[str] = []  # llama.cpp's line for each tensor (a dry run's: its output type)
        self.versions: dict[str, str] = {}  # the child's library versions (manifest_versions), when it ran

    def __call__(self, level: int, line: str) -> None:
        if level >= 4 and line.strip("= \n"):
            # an error can finish a tensor's line ("[ 2/28] token_embd.weight ... failed to quantize: ...")
            self.errors.append(line.strip())
        m = TENSOR_LINE.match(line)
        if m:
            self.done, self.total = int(m["done"]), int(m["total"])
            self.tensor_lines.append(line)
            dims = [int(x) for x in m["shape"].split(",")] if m["shape"] else []
            if len(dims) > 1 and dims[1] > 1:
                self.matrices.append(m["name"])
            self.progress(Progress(self.stage, self.done, self.total, unit="tensors",
                                   rate=self.meter.rate(self.done), rate_unit="tensors",
                                   eta_s=self.meter.eta(self.done, self.total), message=m["name"]))
            return
        s = SIZE_LINE.search(line)
        if s:
            self.sizes[s.group(1)] = float(s.group(2))
        if "will require an imatrix" in line or "requires an importance matrix" in line:
            self.needs_imatrix = True  # a dry run's warning, or the real run's refusal
        f = FALLBACK_LINE.search(line)
        if f:
            self.fallback = (int(f.group(1)), int(f.group(2)))

    def explain(self, what: str, out: Path | None = None) -> str:
        text = " ".join(self.errors)
        if "requantizing from type" in text:
            return (f"{what}: the model is already quantized and quantizing it again loses quality. "
                    "Start from the F16/BF16/F32 model, or allow requantizing (--allow-requantize).")
        if ("requires an imatrix" in text or "Missing importance matrix" in text) and self.has_imatrix:
            m = MISSING_LINE.search(text)
            which = f" (first: {m.group(1)})" if m else ""
            return (f"{what}: the importance matrix has no entry for some tensors this type needs it for{which}. "
                    "It was probably computed on another model; compute it on this model.")
        if "requires an imatrix" in text or "Missing importance matrix" in text:
            return f"{what}: this type needs an importance matrix for some tensors. Pass one (--imatrix)."
        if out is not None and ("iostream error" in text or "failed to write" in text or _disk_full(out)):
            free = shutil.disk_usage(_existing(out.parent)).free
            return (f"{what}: disk full while writing {out} ({format_bytes(free, rough=True)} free in {out.parent}). "
                    "Free some space or choose another folder.")
        if "imatrix size" in text:
            return f"{what}: the importance matrix does not fit this model (computed on another model?)."
        detail = self.errors[-1] if self.errors else "no reason was logged"
        return f"{what}: llama.cpp reported: {detail}"


def _pump(stream: IO[bytes], sink: queue.Queue[bytes | None]) -> None:
    for line in iter(stream.readline, b""):
        sink.put(line)
    sink.put(None)


def _drain_tail(stream: IO[bytes], tail: list[bytes]) -> None:
    for line in iter(stream.readline, b""):
        tail.append(line)
        del tail[:-20]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(1.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_child() -> subprocess.Popen[bytes]:
    """Start a quantize child; it loads llama.cpp and waits for `run_child` (or `discard_child`)."""
    return subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True)


_batch = threading.local()  # this thread's warm_children block: its spare child


@contextlib.contextmanager
def warm_children() -> Iterator[None]:
    """Within this block (on this thread), each quantization takes a child that is already started and has
    loaded llama.cpp, and leaves the next one starting: a batch of quick quantizations (a recipe's candidates
    and probes, a ladder's rungs) does not wait about 0.2 s for each child's start-up. The spare is ended when
    the block ends; nothing outlives it."""
    if getattr(_batch, "active", False):  # nested: the outer block owns the spare
        yield
        return
    _batch.active, _batch.spare = True, None
    try:
        yield
    finally:
        spare, _batch.active, _batch.spare = _batch.spare, False, None
        if spare is not None:
            discard_child(spare)


def take_child() -> subprocess.Popen[bytes]:
    """A started child for the next job: inside warm_children the spare (and a new spare starts), else a
    new one."""
    if not getattr(_batch, "active", False):
        return start_child()
    proc = _batch.spare
    if proc is None or proc.poll() is not None:
        if proc is not None:
            discard_child(proc)
        proc = start_child()
    _batch.spare = start_child()
    return proc


def discard_child(proc: subprocess.Popen[bytes]) -> None:
    """End a child that `run_child` never got (it exits on its own once its stdin closes)."""
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()
    try:
        proc.wait(0.5)
    except subprocess.TimeoutExpired:
        _stop(proc)


def run_child(job: QuantizeJob, watch: LogWatch, cancel: CancelToken,
              proc: subprocess.Popen[bytes] | None = None, on_sent: Callable[[], object] | None = None) -> int:
    """Run `job` in a child process (see quantize_child; `proc` from `start_child`, else a new one), turning
    its lines into `watch` calls; a cancel terminates it. `on_sent()` once the child has its job. The child
    is always gone when this returns or raises."""
    payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    if proc is None:
        proc = start_child()
    lines: queue.Queue[bytes | None] = queue.Queue()
    tail: list[bytes] = []
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True),
               threading.Thread(target=_drain_tail, args=(proc.stderr, tail), daemon=True)]
    for t in readers:
        t.start()
    rc: int | None = None
    try:
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once; its stderr says why
        if on_sent is not None:
            on_sent()
        while True:
            if cancel.cancelled:
                raise Cancelled()
            try:
                raw = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if raw is None:
                break
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg[0] == "log":
                # llama.cpp's own lines (one per tensor): under its logger, so the log dock files them as details
                level = {3: logging.WARNING, 4: logging.ERROR}.get(int(msg[1]), logging.INFO)
                if FALLBACK_LINE.search(str(msg[2])) or "falling back to" in str(msg[2]):
                    level = logging.INFO  # one per tensor and their count: the result's warnings say it in words
                llama_log.log(level, "quantize: %s", str(msg[2]).rstrip())
                watch(int(msg[1]), str(msg[2]))
            elif msg[0] == "versions" and isinstance(msg[1], dict):
                watch.versions = {str(k): str(v) for k, v in msg[1].items()}
            elif msg[0] == "done":
                rc = int(msg[1])
                break
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _stop(proc)
        for t in readers:
            t.join(2)
        for f in (proc.stdout, proc.stderr):
            f.close()
    if rc is None:
        detail = b"".join(tail).decode("utf-8", "replace").strip().splitlines()
        why = f": {detail[-1]}" if detail else ""
        watch.errors.append(f"the quantize process ended unexpectedly (exit code {proc.returncode}){why}")
        return 1
    return rc
