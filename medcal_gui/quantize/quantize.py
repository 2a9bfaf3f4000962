"""Quantize a GGUF with llama.cpp (`llama_model_quantize`), guided by an importance matrix.

The quantization itself runs in a child process (quantize_process, quantize_child): llama.cpp offers no
abort hook there, so cancel means terminating the child, and the child dies with this process. Every output
path is checked first, partial files an interrupted run left behind are removed, the output is written
through a temporary file beside it, and afterwards come `OUT.sha256` (sha256sum format) and
`OUT.manifest.json` (inputs, imatrix, type, sizes, timings, versions). The input is hashed on a thread while
the child quantizes (unless an earlier run remembered its digest), and so is the output, as llama.cpp writes
it (output_hash). Free disk is checked before the child writes: against an upper bound (every tensor as
F32, the largest type llama.cpp's own choices give) where the folder has room for it, else against the size
a dry run of llama.cpp reports; the warnings come from llama.cpp's log of whichever run read the tensors.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui import __version__
from medcal_gui.budget.limits import DISK_MARGIN, check, free_disk, model_shape, quantize_needs
from medcal_gui.calibrate.imatrix_io import ImatrixData
from medcal_gui.core.errors import InputError, MedcalError, ModelError
from medcal_gui.core.file_hashes import file_sha256, known_sha256
from medcal_gui.core.fsutil import (
    atomic_path,
    check_free_space,
    check_input_file,
    check_output_path,
    ensure_dir,
    remove_stale_partials,
    sha256_file,
    write_text_atomic,
)
from medcal_gui.core.jobs import BackgroundCall, CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.units import MiB
from medcal_gui.llama.versions import manifest_versions
from medcal_gui.quantize.output_hash import OutputHash
from medcal_gui.quantize.quant_types import QuantType, get_quant_type, imatrix_advice, quant_rules
from medcal_gui.quantize.quantize_child import QuantizeJob, run_quantize
from medcal_gui.quantize.quantize_process import LogWatch, discard_child, run_child, start_child, take_child
from medcal_gui.quantize.tensor_types import (
    TensorTypeRule,
    canonical_type,
    override_checks,
    override_types,
    tt_pairs,
)

log = logging.getLogger(__name__)

FREE_MARGIN = 1 * MiB  # on top of check_free_space's 5 %: llama.cpp pads, and the sidecars need room
SIDECARS = (".sha256", ".manifest.json")


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
    tensor_types: list[dict[str, Any]] = field(default_factory=list)  # each rule and what it set (RuleMatch)
    prune_layers: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("model", "out", "sha256_file", "manifest"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


def ggml_type_id(name: str, where: str = "--output-tensor-type") -> int:
    """ggml type id for names like q8_0, Q6_K, f16 (llama-quantize's --output-tensor-type): only the types
    llama.cpp can quantize a tensor to (i32 or f64 parse in llama-quantize, then abort the run)."""
    return override_types()[canonical_type(name.strip(), where).lower()]


def _sha256(path: Path, cancel: CancelToken, progress: ProgressCallback, stage: str) -> str:
    total = path.stat().st_size
    meter = RateMeter()

    def on_window(done: int) -> None:
        cancel.check()
        if total > 256 * MiB:
            progress(Progress(stage, done, total, unit="bytes", rate=meter.rate(done) or 0.0,
                              rate_unit="B", eta_s=meter.eta(done, total), message=path.name))

    return sha256_file(path, on_window)


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


class _BackgroundHash:
    """sha256 of a file, computed on a thread (core.jobs.BackgroundCall) unless an earlier run remembered it;
    `result()` waits for it, `stop()` abandons it."""

    def __init__(self, path: Path, cancel: CancelToken) -> None:
        self._stop = CancelToken()
        self._known: str | None = known_sha256(path)
        self._cancel = cancel
        # a thread that only looked the digest up held the GIL while the job was sent
        self._call = None if self._known is not None else BackgroundCall(lambda: self._hash(path), name="medcal-hash")

    def _hash(self, path: Path) -> str:
        return file_sha256(path, lambda p: _sha256(p, self._stop, no_progress, "hash input"))

    def result(self) -> str:
        if self._call is None:
            assert self._known is not None
            return self._known
        self._call.wait(self._cancel, 0.1)
        return self._call.outcome()

    def stop(self) -> None:
        self._stop.cancel()
        if self._call is not None:
            self._call.join(5)


def _coverage_warnings(model: Path, matrices: list[str], data: ImatrixData, label: str) -> list[str]:
    """A warning when the imatrix covers only part of the model's layer weight matrices (`matrices`: the 2-D
    tensors llama.cpp listed in the dry run), as when it was made on another model with fewer layers."""
    wanted = [n for n in matrices if n.startswith("blk.")]
    missing = [n for n in wanted if n not in data.entries]
    if not wanted or not missing:
        return []
    first = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
    return [f"The importance matrix {label} covers only {len(wanted) - len(missing)} of the model's {len(wanted)} "
            f"layer weight matrices: {len(missing)} have no entry ({first}). Was it computed on another model "
            "(fewer layers)? Those tensors are quantized without guidance; compute the importance matrix on "
            f"{model.name} itself."]


def _room_without_dry_run(model: Path, out: Path) -> int | None:
    """The output's upper bound when the output folder has room for it (so llama.cpp's exact estimate, a dry
    run, is not needed to check the disk), else None. It holds for the types a user names too: none is wider
    than F32 (f64 and i64, which llama.cpp cannot write, are refused)."""
    with contextlib.suppress(MedcalError):
        bound = model_shape(model).float32_bytes()
        if bound is not None and free_disk(out.parent) >= (bound + FREE_MARGIN) * DISK_MARGIN:
            return bound
    return None


def _log_verdict(watch: LogWatch, model: Path, qt: QuantType, data: ImatrixData | None, imatrix_label: str | None,
                 advice: str | None, tensor_types: Sequence[TensorTypeRule]) -> list[str]:
    """The warnings a quantize log (a dry run's or the real one's) calls for; InputError where llama.cpp needs an
    importance matrix that was not given."""
    warnings: list[str] = []
    if data is not None:
        warnings += _coverage_warnings(model, watch.matrices, data, imatrix_label or "")
    if watch.fallback:
        warnings.append(
            f"{watch.fallback[0]} of {watch.fallback[1]} tensors cannot take {qt.name}'s block size (their rows "
            "are not a multiple of 256 values) and use a nearby fallback type instead, as llama-quantize does."
        )
    if qt.imatrix == "requires" and data is None:
        # Whether llama.cpp needs an imatrix depends on the tensors that really take the low-bit type: on
        # models whose rows don't fit its 256-value blocks they all fall back, and llama.cpp proceeds.
        if watch.needs_imatrix:
            raise InputError(advice or f"{qt.name} requires an importance matrix.")
        warnings.append(f"{qt.name} usually requires an importance matrix. Without one, llama.cpp stores "
                        "the tensors that would need it in k-quant types instead, so this file is not a true "
                        f"{qt.name}: compute an importance matrix for the real thing.")
    elif watch.needs_imatrix and data is None:
        raise InputError("A tensor type rule asks for a type that llama.cpp writes only with an importance "
                         f"matrix ({', '.join(r.text for r in tensor_types)}). Give --imatrix, or choose "
                         "a type such as q4_K or q8_0 in the rule.")
    return warnings


class _Children:
    """The quantize children (quantize_process) a quantize_model call holds. `discard()` is its one clean-up, run
    on every way out: a child that run_child took is gone already, any other is ended."""

    def __init__(self, main: subprocess.Popen[bytes] | None) -> None:
        self.main = main  # the real run's child
        self.dry: subprocess.Popen[bytes] | None = None  # the dry run's, until run_child takes it

    def discard(self) -> None:
        for proc in (self.dry, self.main):
            if proc is not None:
                discard_child(proc)
        self.dry = self.main = None


def _check_inputs(model: Path, out: Path, imatrix: Path | ImatrixData | None, output_tensor_type: str | None,
                  token_embedding_type: str | None, dry_run: bool) -> tuple[int | None, int | None, list[str]]:
    """The checks before any work: the input files, the type names and, for a real run, every output path (the
    partial files an interrupted run left are removed). Returns the two override type ids and the notes."""
    warnings: list[str] = []
    # a FIFO would block the reader and /dev/zero be read without end: refused before anything opens them
    check_input_file(model, "model file", error=ModelError)
    if isinstance(imatrix, (str, Path)):
        check_input_file(Path(imatrix), "importance matrix")
    out_type = ggml_type_id(output_tensor_type) if output_tensor_type else None
    emb_type = ggml_type_id(token_embedding_type, "--token-embedding-type") if token_embedding_type else None
    if not dry_run:  # every output path is checked before any work
        inputs = [model] + ([Path(imatrix)] if isinstance(imatrix, (str, Path)) else [])
        check_output_path(out, inputs, sidecars=SIDECARS, what="quantized model")
        for note in remove_stale_partials(out.parent, out.suffix + ".tmp"):
            log.warning("%s", note)
            warnings.append(note)
    return out_type, emb_type, warnings


def _load_imatrix(imatrix: Path | ImatrixData | None) -> tuple[ImatrixData | None, str | None, Path | None]:
    """The importance matrix (data, label, path), refused when llama-quantize would refuse it or it is empty."""
    data: ImatrixData | None = None
    imatrix_label: str | None = None
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
    return data, imatrix_label, imatrix_path


def _kv_overrides(data: ImatrixData | None, imatrix_label: str | None,
                  provenance: Mapping[str, object] | None) -> list[tuple[str, int | str]]:
    """The metadata keys the output gets: llama-quantize's quantize.imatrix.*, medcal.version and `provenance`."""
    kv: list[tuple[str, int | str]] = []
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
    return kv


def _run_dry(job: QuantizeJob, children: _Children, model: Path, dry_run: bool,
             tensor_types: Sequence[TensorTypeRule], progress: ProgressCallback, cancel: CancelToken) -> LogWatch:
    """llama.cpp's own size estimate: a dry run reads only metadata (quick enough to run here). A real run skips
    it where the disk has room even for every tensor as F32."""
    dry = LogWatch(progress, "quantize (size estimate)" if not dry_run else "quantize")
    if tensor_types:
        # llama.cpp matches the rules with std::regex, which nothing interrupts: in a child, which a cancel ends
        # at once (the real run's child starts meanwhile)
        children.dry, children.main = (children.main if children.main is not None else start_child()), None
        children.main = None if dry_run else take_child()
        proc, children.dry = children.dry, None
        rc = run_child(job, dry, cancel, proc)
    else:
        rc = run_quantize(job, dry)
    if rc != 0:
        raise ModelError(dry.explain(f"Cannot quantize {model}"))
    return dry


def quantize_model(model: Path, out: Path, qtype: str, *, imatrix: Path | ImatrixData | None = None,
                   threads: int | None = None, dry_run: bool = False, output_tensor_type: str | None = None,
                   token_embedding_type: str | None = None, pure: bool = False,
                   allow_requantize: bool = False, tensor_types: Sequence[TensorTypeRule] = (),
                   prune_layers: Sequence[int] = (),
                   provenance: Mapping[str, object] | None = None, progress: ProgressCallback = no_progress,
                   cancel: CancelToken | None = None,
                   child: subprocess.Popen[bytes] | None = None) -> QuantizeResult:
    """Quantize `model` to `out` as `qtype` (a quant_types name such as Q4_K_M or IQ3_XXS).

    `imatrix` is an imatrix file (GGUF or legacy .dat) or data in memory. `provenance` adds `medcal.*`
    metadata keys (e.g. {"calibration.sha256": ..., "calibration.variant": ...}). `tensor_types` are
    llama-quantize's --tensor-type rules (first match wins), `prune_layers` its --prune-layers. A dry run
    writes nothing and reports llama.cpp's size estimate. `child`: a child from `start_child()` started
    earlier (the CLI starts it before its own imports); this call ends it in every case.
    """
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    children = _Children(child)
    try:
        qt: QuantType = get_quant_type(qtype)
        model, out = Path(model), Path(out)
        out_type, emb_type, warnings = _check_inputs(model, out, imatrix, output_tensor_type, token_embedding_type,
                                                     dry_run)
        if dry_run:
            children.discard()
        # The child starts now (unless it was started earlier, or a warm_children block has one ready) and loads
        # llama.cpp while this process reads the imatrix and checks the limits.
        if not dry_run and children.main is None:
            children.main = take_child()
        data, imatrix_label, imatrix_path = _load_imatrix(imatrix)
        imatrix_sha: str | None = None
        prune = sorted(set(prune_layers))
        matches, notes = override_checks(model, tensor_types, prune, qt.is_float, token_embedding_type,
                                         output_tensor_type, cancel=cancel)
        cancel.check()
        warnings += notes
        advice = imatrix_advice(qt, data is not None)
        if qt.imatrix == "requires" and data is None and qt.name in quant_rules().refuse_without_imatrix:
            raise InputError(advice or f"{qt.name} requires an importance matrix.")
        if advice and not (qt.imatrix == "requires" and data is None):
            warnings.append(advice)

        if not dry_run:
            ensure_dir(out.parent)

        kv = _kv_overrides(data, imatrix_label, provenance)
        importance = None if data is None else {  # as bytes: the child has no numpy to unpickle arrays with
            name: values.astype("<f4", copy=False).tobytes() for name, values in data.importance().items()}
        job = QuantizeJob(model=str(model), out=str(out), ftype=qt.ftype, nthread=threads or 0,
                          allow_requantize=allow_requantize, pure=pure, dry_run=True,
                          output_tensor_type=out_type, token_embedding_type=emb_type, imatrix=importance,
                          kv_overrides=kv, tt_overrides=tt_pairs(tensor_types), prune_layers=prune)
        input_bytes = model.stat().st_size

        estimate = None if dry_run else _room_without_dry_run(model, out)
        dry_ran = estimate is None
        dry_lines: list[str] | None = None  # the dry run's tensor lines, when one ran
        if estimate is None:
            dry = _run_dry(job, children, model, dry_run, tensor_types, progress, cancel)
            dry_lines = dry.tensor_lines
            warnings += _log_verdict(dry, model, qt, data, imatrix_label, advice, tensor_types)
            est = int(dry.sizes.get("quant", 0.0) * MiB)
            overhead = max(0, input_bytes - int(dry.sizes.get("model", 0.0) * MiB))
            estimate = est + overhead
            if dry_run:
                return QuantizeResult(model=model, out=None, qtype=qt.name, ftype=qt.ftype, dry_run=True,
                                      input_bytes=input_bytes, output_bytes=estimate, tensors=dry.total,
                                      seconds=time.monotonic() - t0, imatrix=imatrix_label,
                                      imatrix_entries=len(data.entries) if data else 0,
                                      imatrix_chunks=data.chunk_count if data else 0, warnings=warnings,
                                      tensor_types=[m.to_json() for m in matches], prune_layers=prune)
            check_free_space(out.parent, estimate + FREE_MARGIN, f"the quantized model {out.name}")
        check(quantize_needs(model, out, qt.bpw, output_bytes=estimate))  # memory, and disk with what it holds
        if imatrix_path is not None:
            imatrix_sha = _sha256(imatrix_path, cancel, no_progress, "hash imatrix")

        watch = LogWatch(progress, "quantize", has_imatrix=data is not None)
        t_q = time.monotonic()
        # The input is hashed while the child quantizes (hashlib releases the GIL): it costs no wall time. So is
        # the output, as llama.cpp writes it (output_hash), once the child has its job.
        input_hash = _BackgroundHash(model, cancel)
        output_hash: list[OutputHash] = []
        try:
            with atomic_path(out) as tmp:
                job.out = str(tmp)
                job.dry_run = False
                rc = run_child(job, watch, cancel, children.main,
                               on_sent=lambda: output_hash.append(OutputHash(job, tmp, cancel, dry_lines)))
                if rc != 0:
                    if watch.needs_imatrix and data is None:
                        _log_verdict(watch, model, qt, data, imatrix_label, advice, tensor_types)  # raises
                    raise ModelError(watch.explain(f"Quantizing {model} to {qt.name} failed", out))
                if not dry_ran:
                    warnings += _log_verdict(watch, model, qt, data, imatrix_label, advice, tensor_types)
                quantize_s = time.monotonic() - t_q
                cancel.check()
                out_sha = (output_hash[0].finish() if output_hash else None) or _sha256(tmp, cancel, progress,
                                                                                       "hash output")
                out_bytes = tmp.stat().st_size
                model_sha = input_hash.result()
        finally:
            input_hash.stop()
            for h in output_hash:
                h.stop()
    finally:
        children.discard()  # the real run's child is gone already unless something failed before it got its job
    # Sidecars are written after the model is in place: a cancel before this point leaves nothing.
    sha_file = out.with_name(out.name + ".sha256")
    write_text_atomic(sha_file, f"{out_sha}  {out.name}\n")
    manifest = out.with_name(out.name + ".manifest.json")
    res = QuantizeResult(model=model, out=out, qtype=qt.name, ftype=qt.ftype, dry_run=False,
                         input_bytes=input_bytes, output_bytes=out_bytes, tensors=watch.total,
                         seconds=time.monotonic() - t0, imatrix=imatrix_label, imatrix_sha256=imatrix_sha,
                         imatrix_entries=len(data.entries) if data else 0,
                         imatrix_chunks=data.chunk_count if data else 0, sha256=out_sha, sha256_file=sha_file,
                         manifest=manifest, warnings=warnings, tensor_types=[m.to_json() for m in matches],
                         prune_layers=prune)
    doc = _manifest(res, watch.versions or manifest_versions(), model_sha, data, quantize_s, kv, threads, pure,
                    allow_requantize, output_tensor_type, token_embedding_type)
    write_text_atomic(manifest, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    progress(Progress("quantize", watch.total, watch.total, unit="tensors", message="done"))
    return res


def _manifest(res: QuantizeResult, versions: dict[str, str], model_sha: str, data: ImatrixData | None,
              quantize_s: float, kv: list[tuple[str, int | str]], threads: int | None, pure: bool,
              allow_requantize: bool, output_tensor_type: str | None,
              token_embedding_type: str | None) -> dict[str, Any]:
    return {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions,
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
        "tensor_types": res.tensor_types,
        "prune_layers": res.prune_layers,
        "tensors": res.tensors,
        "warnings": res.warnings,
    }
