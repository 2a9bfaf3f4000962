"""Quantize a GGUF with llama.cpp (`llama_model_quantize`), guided by an importance matrix.

The quantization itself runs in a spawned child process: llama.cpp offers no abort hook there, so cancel
means terminating the child. The parent turns the child's per-tensor log lines ("[  12/ 236] blk.0...")
into progress, writes through a temporary file beside the output, and afterwards writes `OUT.sha256`
(sha256sum format) and `OUT.manifest.json` (inputs, imatrix, type, sizes, timings, versions).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import multiprocessing
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui import __version__
from medcal_gui.engine.imatrix_io import ImatrixData
from medcal_gui.engine.limits import check, quantize_needs
from medcal_gui.engine.quant_types import QuantType, get_quant_type, imatrix_advice
from medcal_gui.engine.quantize_child import QuantizeJob, child_main, run_quantize
from medcal_gui.errors import Cancelled, InputError, ModelError
from medcal_gui.fsutil import (
    atomic_path,
    check_free_space,
    ensure_dir,
    refuse_input_overwrite,
    write_text_atomic,
)
from medcal_gui.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress

log = logging.getLogger(__name__)

TENSOR_LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
SIZE_LINE = re.compile(r"(model|quant) size\s*=\s*([0-9.]+) MiB")
FALLBACK_LINE = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")
MiB = 1024 * 1024


@dataclass
class QuantizeResult:
    model: Path
    out: Path | None
    qtype: str
    ftype: int
    dry_run: bool
    input_bytes: int
    output_bytes: int  # the file's size, or llama.cpp's estimate for a dry run
    tensors: int
    seconds: float
    imatrix: str | None = None
    imatrix_sha256: str | None = None
    imatrix_entries: int = 0
    imatrix_chunks: int = 0
    sha256: str | None = None
    sha256_file: Path | None = None
    manifest: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "out", "sha256_file", "manifest"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


def ggml_type_id(name: str) -> int:
    """ggml type id for names like q8_0, Q6_K, f16 (llama-quantize's --output-tensor-type)."""
    import gguf

    try:
        return int(gguf.GGMLQuantizationType[name.strip().upper()])
    except KeyError:
        valid = ", ".join(t.name for t in gguf.GGMLQuantizationType)
        raise InputError(f"Unknown tensor type {name!r}. Valid types: {valid}.") from None


def _sha256(path: Path, cancel: CancelToken, progress: ProgressCallback, stage: str) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    meter = RateMeter()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            cancel.check()
            h.update(chunk)
            done += len(chunk)
            if total > 256 * MiB:
                progress(Progress(stage, done, total, unit="bytes", rate=meter.rate(done) or 0.0,
                                  rate_unit="B", eta_s=meter.eta(done, total), message=path.name))
    return h.hexdigest()


def _kv_value(v: object) -> int | str:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    return str(v)


def _clip(s: str) -> str:
    """llama.cpp's override strings hold 127 bytes; cut on a character boundary."""
    b = s.encode("utf-8")[:127]
    return b.decode("utf-8", "ignore")


class _LogWatch:
    """Collects what matters from llama.cpp's quantize log and turns tensor lines into progress."""

    def __init__(self, progress: ProgressCallback, stage: str) -> None:
        self.progress = progress
        self.stage = stage
        self.meter = RateMeter()
        self.done = 0
        self.total = 0
        self.sizes: dict[str, float] = {}
        self.errors: list[str] = []
        self.fallback: tuple[int, int] | None = None
        self.needs_imatrix = False  # a dry run found tensors that llama.cpp will refuse without one

    def __call__(self, level: int, line: str) -> None:
        if level >= 4 and line.strip("= \n"):
            # an error can finish a tensor's line ("[ 2/28] token_embd.weight ... failed to quantize: ...")
            self.errors.append(line.strip())
        m = TENSOR_LINE.match(line)
        if m:
            self.done, self.total = int(m.group(1)), int(m.group(2))
            self.progress(Progress(self.stage, self.done, self.total, unit="tensors",
                                   rate=self.meter.rate(self.done), rate_unit="tensors",
                                   eta_s=self.meter.eta(self.done, self.total), message=m.group(3)))
            return
        s = SIZE_LINE.search(line)
        if s:
            self.sizes[s.group(1)] = float(s.group(2))
        if "will require an imatrix" in line:
            self.needs_imatrix = True
        f = FALLBACK_LINE.search(line)
        if f:
            self.fallback = (int(f.group(1)), int(f.group(2)))

    def explain(self, what: str) -> str:
        text = " ".join(self.errors)
        if "requantizing from type" in text:
            return (f"{what}: the model is already quantized and quantizing it again loses quality. "
                    "Start from the F16/BF16/F32 model, or allow requantizing (--allow-requantize).")
        if "requires an imatrix" in text or "Missing importance matrix" in text:
            return f"{what}: this type needs an importance matrix for some tensors. Pass one (--imatrix)."
        if "imatrix size" in text:
            return f"{what}: the importance matrix does not fit this model (computed on another model?)."
        detail = self.errors[-1] if self.errors else "no reason was logged"
        return f"{what}: llama.cpp reported: {detail}"


def _run_child(job: QuantizeJob, watch: _LogWatch, cancel: CancelToken) -> int:
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_main, args=(child_conn, job), name="medcal-quantize", daemon=True)
    proc.start()
    child_conn.close()
    rc: int | None = None
    try:
        while True:
            if cancel.cancelled:
                raise Cancelled()
            if parent_conn.poll(0.1):
                try:
                    msg = parent_conn.recv()
                except EOFError:
                    break
                if msg[0] == "log":
                    log.info("quantize: %s", msg[2].rstrip())
                    watch(int(msg[1]), str(msg[2]))
                elif msg[0] == "done":
                    rc = int(msg[1])
                    break
            elif not proc.is_alive() and not parent_conn.poll(0):
                break
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.5)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        parent_conn.close()
    if rc is None:
        watch.errors.append(f"the quantize process ended unexpectedly (exit code {proc.exitcode})")
        return 1
    return rc


def quantize_model(model: Path, out: Path, qtype: str, *, imatrix: Path | ImatrixData | None = None,
                   threads: int | None = None, dry_run: bool = False, output_tensor_type: str | None = None,
                   token_embedding_type: str | None = None, pure: bool = False,
                   allow_requantize: bool = False,
                   provenance: Mapping[str, object] | None = None, progress: ProgressCallback = no_progress,
                   cancel: CancelToken | None = None) -> QuantizeResult:
    """Quantize `model` to `out` as `qtype` (a quant_types name such as Q4_K_M or IQ3_XXS).

    `imatrix` is an imatrix file (GGUF or legacy .dat) or data in memory. `provenance` adds `medcal.*`
    metadata keys (e.g. {"calibration.sha256": ..., "calibration.variant": ...}). A dry run writes
    nothing and reports llama.cpp's size estimate.
    """
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    qt: QuantType = get_quant_type(qtype)
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise ModelError(f"The model file {model} does not exist.")
    out_type = ggml_type_id(output_tensor_type) if output_tensor_type else None
    emb_type = ggml_type_id(token_embedding_type) if token_embedding_type else None

    warnings: list[str] = []
    data: ImatrixData | None = None
    imatrix_label: str | None = None
    imatrix_sha: str | None = None
    imatrix_path = Path(imatrix) if isinstance(imatrix, (str, Path)) else None
    if imatrix_path is not None:
        data = ImatrixData.load(imatrix_path)
        imatrix_label = str(imatrix_path)
        if not data.is_legacy and not data.has_metadata:
            raise InputError(f"The importance matrix {imatrix_path} lacks its imatrix.* metadata; "
                             "llama-quantize refuses such a file. Recompute it with `medcal imatrix`.")
    elif isinstance(imatrix, ImatrixData):
        data = imatrix
        imatrix_label = "(in memory)"
    if data is not None and not data.entries:
        raise InputError(f"The importance matrix {imatrix_label} holds no entries.")
    advice = imatrix_advice(qt, data is not None)
    if qt.imatrix == "requires" and data is None and qt.name.startswith(("IQ1_", "IQ2_")):
        raise InputError(advice or f"{qt.name} requires an importance matrix.")
    if advice and not (qt.imatrix == "requires" and data is None):
        warnings.append(advice)

    if not dry_run:
        inputs = [model] + ([imatrix_path] if imatrix_path else [])
        refuse_input_overwrite(out, inputs)
        for side in (out.with_name(out.name + ".sha256"), out.with_name(out.name + ".manifest.json")):
            refuse_input_overwrite(side, inputs)
        ensure_dir(out.parent)

    kv: list[tuple[str, int | str]] = []
    importance = data.importance() if data is not None else None
    if data is not None:
        kv.append(("quantize.imatrix.file", _clip(imatrix_label or "")))
        if data.datasets:
            kv.append(("quantize.imatrix.dataset", _clip(data.datasets[0])))
        kv.append(("quantize.imatrix.entries_count", len(data.entries)))
        if data.chunk_count > 0:
            kv.append(("quantize.imatrix.chunks_count", int(data.chunk_count)))
    kv.append(("medcal.version", __version__))
    for k, v in (provenance or {}).items():
        key = k if k.startswith("medcal.") else "medcal." + k
        val = _kv_value(v)
        kv.append((key, _clip(val) if isinstance(val, str) else val))

    job = QuantizeJob(model=str(model), out=str(out), ftype=qt.ftype, nthread=threads or 0,
                      allow_requantize=allow_requantize, pure=pure, dry_run=True,
                      output_tensor_type=out_type, token_embedding_type=emb_type, imatrix=importance,
                      kv_overrides=kv)
    input_bytes = model.stat().st_size

    # The dry run only reads metadata: quick enough to run here, and it sizes the free-space check.
    dry = _LogWatch(progress, "quantize (size estimate)" if not dry_run else "quantize")
    rc = run_quantize(job, dry)
    if rc != 0:
        raise ModelError(dry.explain(f"Cannot quantize {model}"))
    if dry.fallback:
        warnings.append(
            f"{dry.fallback[0]} of {dry.fallback[1]} tensors cannot take {qt.name}'s block size (their rows "
            "are not a multiple of 256 values) and use a nearby fallback type instead, as llama-quantize does."
        )
    if qt.imatrix == "requires" and data is None:
        # Whether llama.cpp needs an imatrix depends on the tensors that really take the low-bit type: on
        # models whose rows don't fit its 256-value blocks they all fall back, and llama.cpp proceeds.
        if dry.needs_imatrix:
            raise InputError(advice or f"{qt.name} requires an importance matrix.")
        warnings.append(f"{qt.name} usually requires an importance matrix. Without one, llama.cpp stores the "
                        f"tensors that would need it in k-quant types instead, so this file is not a true {qt.name}: "
                        "compute an importance matrix for the real thing.")
    est = int(dry.sizes.get("quant", 0.0) * MiB)
    overhead = max(0, input_bytes - int(dry.sizes.get("model", 0.0) * MiB))
    estimate = est + overhead
    if dry_run:
        return QuantizeResult(model=model, out=None, qtype=qt.name, ftype=qt.ftype, dry_run=True,
                              input_bytes=input_bytes, output_bytes=estimate, tensors=dry.total,
                              seconds=time.monotonic() - t0, imatrix=imatrix_label,
                              imatrix_entries=len(data.entries) if data else 0,
                              imatrix_chunks=data.chunk_count if data else 0, warnings=warnings)

    check(quantize_needs(model, out, qt.bpw, output_bytes=estimate))
    check_free_space(out.parent, estimate, f"the quantized model {out.name}")
    model_sha = _sha256(model, cancel, progress, "hash input")
    if imatrix_path is not None:
        imatrix_sha = _sha256(imatrix_path, cancel, progress, "hash imatrix")
    cancel.check()

    watch = _LogWatch(progress, "quantize")
    t_q = time.monotonic()
    with atomic_path(out) as tmp:
        job.out = str(tmp)
        job.dry_run = False
        rc = _run_child(job, watch, cancel)
        if rc != 0:
            raise ModelError(watch.explain(f"Quantizing {model} to {qt.name} failed"))
        quantize_s = time.monotonic() - t_q
        cancel.check()
        out_sha = _sha256(tmp, cancel, progress, "hash output")
        out_bytes = tmp.stat().st_size
    # Sidecars are written after the model is in place: a cancel before this point leaves nothing.
    sha_file = out.with_name(out.name + ".sha256")
    write_text_atomic(sha_file, f"{out_sha}  {out.name}\n")
    manifest = out.with_name(out.name + ".manifest.json")
    res = QuantizeResult(model=model, out=out, qtype=qt.name, ftype=qt.ftype, dry_run=False,
                         input_bytes=input_bytes, output_bytes=out_bytes, tensors=watch.total,
                         seconds=time.monotonic() - t0, imatrix=imatrix_label, imatrix_sha256=imatrix_sha,
                         imatrix_entries=len(data.entries) if data else 0,
                         imatrix_chunks=data.chunk_count if data else 0, sha256=out_sha, sha256_file=sha_file,
                         manifest=manifest, warnings=warnings)
    doc = _manifest(res, model_sha, data, quantize_s, kv, threads, pure, allow_requantize, output_tensor_type,
                    token_embedding_type)
    write_text_atomic(manifest, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    progress(Progress("quantize", watch.total, watch.total, unit="tensors", message="done"))
    return res


def _versions() -> dict[str, str]:
    try:
        import llama_cpp

        lcp = str(getattr(llama_cpp, "__version__", "unknown"))
    except Exception:  # pragma: no cover - llama_cpp is a hard dependency
        lcp = "unknown"
    return {"medcal": __version__, "llama_cpp_python": lcp}


def _manifest(res: QuantizeResult, model_sha: str, data: ImatrixData | None, quantize_s: float,
              kv: list[tuple[str, int | str]], threads: int | None, pure: bool, allow_requantize: bool,
              output_tensor_type: str | None, token_embedding_type: str | None) -> dict[str, Any]:
    return {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "input": {"path": str(res.model.resolve()), "sha256": model_sha, "bytes": res.input_bytes},
        "output": {"path": str(res.out.resolve()) if res.out else None, "sha256": res.sha256,
                   "bytes": res.output_bytes},
        "type": {"name": res.qtype, "ftype": res.ftype},
        "imatrix": None if data is None else {
            "path": res.imatrix, "sha256": res.imatrix_sha256, "entries": len(data.entries),
            "chunk_count": data.chunk_count, "chunk_size": data.chunk_size, "datasets": list(data.datasets),
        },
        "options": {"threads": threads, "pure": pure, "allow_requantize": allow_requantize,
                    "output_tensor_type": output_tensor_type, "token_embedding_type": token_embedding_type},
        "metadata_written": {k: v for k, v in kv},
        "timings_s": {"quantize": round(quantize_s, 3), "total": round(res.seconds, 3)},
        "tensors": res.tensors,
        "warnings": res.warnings,
    }
