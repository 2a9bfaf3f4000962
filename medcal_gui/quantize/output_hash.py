"""The sha256 of a quantized file, computed while llama.cpp writes it.

llama.cpp writes a quantized GGUF as placeholder zeros the size of its header, then the tensors in order, and
the header itself last (llama-quant.cpp). A sha256 starts with the header, so hashing the finished file was all
tail: 0.18 s of every quantize of the demo model (253 MB). The header can be known before it is written,
though: it is the input's metadata copied key by key, with llama-quant.cpp's few changes (general.
quantization_version and general.file_type set last, the split keys removed, the overrides set last in their
order, block_count after a prune), then each tensor's name, shape, type and offset, the types being those
llama.cpp's own dry run reports.

`OutputHash` runs that dry run beside the quantization, builds the header, hashes it, and follows the file as
the tensors arrive. When the file is complete, the header llama.cpp wrote is compared byte for byte with the
prediction, and the size with the expected one: any difference, or anything the prediction does not
understand, means hashing the finished file as before (`finish` returns None). The digest is always the
file's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import struct
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from medcal_gui.core.jobs import CancelToken
from medcal_gui.gguf_files.gguf_header import DEFAULT_ALIGNMENT, HeaderError, read_header
from medcal_gui.quantize.quantize_child import QuantizeJob
from medcal_gui.quantize.quantize_process import TENSOR_LINE

log = logging.getLogger(__name__)

GGUF_VERSION = 3  # what gguf_init_empty() writes
GGML_QNT_VERSION = 2  # ggml.h: general.quantization_version
GGUF_TYPE_UINT32, GGUF_TYPE_STRING = 4, 8  # gguf.h
SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")
CHUNK = 4 << 20
POLL_S = 0.02


def tensor_plan(lines: Sequence[str]) -> list[tuple[str, list[int], str]]:
    """(name, ggml shape, type name the output gets) per tensor, in the order llama.cpp writes them, from a dry
    run's tensor lines. ValueError for a line without its type."""
    plan = []
    for line in lines:
        m = TENSOR_LINE.match(line)
        if not m:
            continue
        if not m["shape"] or not m["type"]:
            raise ValueError(f"not a dry run's tensor line: {line!r}")
        plan.append((m["name"], [int(x) for x in m["shape"].split(",")], m["new_type"] or m["type"]))
    return plan


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, value: int | str) -> bytes:
    if isinstance(value, int):  # llama-quant.cpp stores an integer override as u32 (of its absolute value)
        return _str(key) + struct.pack("<iI", GGUF_TYPE_UINT32, abs(value) & 0xFFFFFFFF)
    return _str(key) + struct.pack("<i", GGUF_TYPE_STRING) + _str(value)


def predict_meta(model: Path, plan: Sequence[tuple[str, list[int], str]], ftype: int,
                 kv_overrides: Sequence[tuple[str, int | str]], prune_layers: Sequence[int]) -> tuple[bytes, int]:
    """The header llama.cpp will write for this quantization, and the whole file's size. ValueError where the
    input is one the prediction does not cover."""
    from medcal_gui.llama import quantize_ctypes as qc

    type_ids = {qc.ggml_type_name(i).lower(): i for i in range(qc.GGML_TYPE_COUNT) if qc.ggml_blck_size(i) > 0}
    try:
        header = read_header(model, decode_strings=False, check_types=False)
    except (HeaderError, OSError) as exc:
        raise ValueError(f"header: {exc}") from exc
    if "general.alignment" in header.fields or not plan:
        raise ValueError("a custom alignment, or no tensors")
    with open(model, "rb") as fh:
        raw = fh.read(header.data_start)
    kvs = {key: raw[a:b] for key, (a, b) in header.kv_spans.items()}  # in the input's order

    def set_kv(key: str, encoded: bytes) -> None:  # gguf_set_val_*: the key moves to the end
        kvs.pop(key, None)
        kvs[key] = encoded

    set_kv("general.quantization_version", _kv("general.quantization_version", GGML_QNT_VERSION))
    set_kv("general.file_type", _kv("general.file_type", ftype))
    for key in SPLIT_KEYS:
        kvs.pop(key, None)
    for key, value in kv_overrides:
        set_kv(key, _kv(key, value))
    if prune_layers:
        arch = header.fields.get("general.architecture")
        n = header.fields.get(f"{arch}.block_count")
        if not isinstance(n, int):
            raise ValueError("no block_count to prune")
        set_kv(f"{arch}.block_count", _kv(f"{arch}.block_count", n - len(set(prune_layers))))
    meta = bytearray(b"GGUF" + struct.pack("<Iqq", GGUF_VERSION, len(plan), len(kvs)))
    for encoded in kvs.values():
        meta += encoded
    offset = 0
    for name, shape, type_name in plan:
        type_id = type_ids.get(type_name.lower())
        if type_id is None:
            raise ValueError(f"{name}: unknown type {type_name}")
        block = qc.ggml_blck_size(type_id)
        if shape[0] % block:
            raise ValueError(f"{name}: rows of {shape[0]} values in blocks of {block}")
        n_dims = max([i + 1 for i, d in enumerate(shape) if d != 1] or [1])  # ggml_n_dims
        meta += _str(name) + struct.pack(f"<I{n_dims}qiQ", n_dims, *shape[:n_dims], type_id, offset)
        n_bytes = qc.ggml_row_size(type_id, shape[0])
        for d in shape[1:]:
            n_bytes *= d
        offset += -(-n_bytes // DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
    meta += bytes(-len(meta) % DEFAULT_ALIGNMENT)
    return bytes(meta), len(meta) + offset


# Whether the thread lowers itself. The window turns this off while it runs (ui/jobs/gil_policy.py): the thread
# takes the GIL, and a thread at nice 19 that the kernel preempts holding it leaves the GUI thread waiting for it
# behind all the machine's other work (priority inversion; seen under load: the GUI thread stalled 65 ms while
# this thread, holding the GIL, sat 72-136 ms in the run queue).
LOWER_PRIORITY = True


def _yield_to_others() -> None:
    """This thread runs at the lowest priority (Linux: a thread's own nice value), so that its work (the dry run,
    the hash) fills the moments llama.cpp leaves a core idle instead of taking one from its threads."""
    if LOWER_PRIORITY and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class OutputHash:
    """The sha256 of `path` while llama.cpp writes `job` to it (see the module's docstring). `dry_lines`: the
    lines of a dry run this job already had, if any. `finish()` once the writer succeeded: the digest, or None
    (hash the file instead); `stop()` on any other way out."""

    def __init__(self, job: QuantizeJob, path: Path, cancel: CancelToken,
                 dry_lines: Sequence[str] | None = None) -> None:
        self._job = dataclasses.replace(job, dry_run=True)
        self._path = Path(path)
        self._cancel = cancel
        self._dry_lines = list(dry_lines) if dry_lines else None
        self._written = threading.Event()  # the writer is done: what is there is all there will be
        self._stopped = threading.Event()
        self._digest: str | None = None
        self._meta: bytes | None = None
        self._total = 0
        self._thread = threading.Thread(target=self._run, name="medcal-output-hash", daemon=True)
        self._thread.start()

    def _plan_lines(self) -> list[str]:
        if self._dry_lines is not None:
            return self._dry_lines
        from medcal_gui.llama.log import muted
        from medcal_gui.quantize.quantize_child import run_quantize

        lines: list[str] = []
        with muted():  # the window's log shows the real run's lines only
            rc = run_quantize(self._job, lambda _level, line: lines.append(line))
        if rc != 0:
            raise ValueError("the dry run failed")
        return lines

    def _run(self) -> None:
        _yield_to_others()
        try:
            job = self._job
            meta, total = predict_meta(Path(job.model), tensor_plan(self._plan_lines()), job.ftype,
                                       job.kv_overrides, job.prune_layers)
            self._follow(meta, total)
        except Exception as exc:  # noqa: BLE001 - the finished file is hashed instead
            log.debug("hashing %s while it is written: not possible (%s)", self._path, exc)

    def _follow(self, meta: bytes, total: int) -> None:
        h = hashlib.sha256(meta)
        pos = len(meta)
        buf = bytearray(CHUNK)
        with open(self._path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            while not self._stopped.is_set() and not self._cancel.cancelled:
                done = self._written.is_set()  # read before the size: nothing is written after it is set
                upto = min(os.fstat(fd).st_size, total)
                if upto - pos >= CHUNK or (done and upto > pos):
                    fh.seek(pos)
                    n = fh.readinto(memoryview(buf)[:min(CHUNK, upto - pos)])
                    if not n:
                        return
                    h.update(memoryview(buf)[:n])
                    pos += n
                elif done:
                    break
                else:
                    self._written.wait(POLL_S)
            else:
                return
            fh.seek(0)
            if pos != total or os.fstat(fd).st_size != total or fh.read(len(meta)) != meta:
                log.debug("%s: llama.cpp's header or size differs from the prediction; hashing the file", self._path)
                return
        self._meta, self._total, self._digest = meta, total, h.hexdigest()

    def finish(self) -> str | None:
        """The writer has finished: the file's sha256 if the prediction held, else None."""
        self._written.set()
        while self._thread.is_alive():
            self._cancel.check()
            self._thread.join(0.1)
        return self._digest

    def stop(self) -> None:
        self._stopped.set()
        self._written.set()
        self._thread.join(5)
