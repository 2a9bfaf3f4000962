"""Float conversions of whole arrays through llama.cpp's CPU backend (SIMD where the CPU has it), bit for bit
what numpy's casts give (round to nearest even): the converter's hot loop, several times faster than numpy's
float32 -> float16 cast. Where the backend library is not there to load, numpy does the work."""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from medcal_gui.llama.ggml_ctypes import load_ggml


@functools.cache
def _row_converters() -> ctypes.CDLL | None:
    """The CPU backend's row converters (SIMD where the CPU has it; round to nearest even, like numpy's casts),
    or None where llama.cpp was built with its CPU backend in per-CPU variants (no plain libggml-cpu):
    GGML_BACKEND_API void ggml_cpu_fp32_to_fp16(const float *, ggml_fp16_t *, int64_t);
    GGML_BACKEND_API void ggml_cpu_fp16_to_fp32(const ggml_fp16_t *, float *, int64_t);
    GGML_BACKEND_API void ggml_cpu_bf16_to_fp32(const ggml_bf16_t *, float *, int64_t);"""
    try:
        lib = load_ggml("ggml-cpu")
        for name in ("ggml_cpu_fp32_to_fp16", "ggml_cpu_fp16_to_fp32", "ggml_cpu_bf16_to_fp32"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            getattr(lib, name).restype = None
    except (OSError, AttributeError):
        return None
    return lib


def _convert_row(name: str, src: np.ndarray, out_dtype: type, in_itemsize: int) -> np.ndarray | None:
    lib = _row_converters()
    if lib is None:
        return None
    src = np.ascontiguousarray(src)
    if src.dtype.itemsize != in_itemsize:
        raise TypeError(f"expected {in_itemsize}-byte words, got {src.dtype}")
    out: np.ndarray = np.empty(src.shape, dtype=out_dtype)
    getattr(lib, name)(src.ctypes.data, out.ctypes.data, src.size)  # ctypes lets go of the GIL for the call
    return out


def f32_to_f16(src: np.ndarray) -> np.ndarray:
    """float32 values to float16, as numpy's `astype(np.float16)` does (bit for bit), several times faster."""
    src = src.astype(np.float32, copy=False)
    out = _convert_row("ggml_cpu_fp32_to_fp16", src, np.float16, 4)
    return src.astype(np.float16) if out is None else out


def bf16_to_f32(words: np.ndarray) -> np.ndarray:
    """bfloat16 words (uint16) to float32, exactly."""
    out = _convert_row("ggml_cpu_bf16_to_fp32", words, np.float32, 2)
    if out is None:
        wide = words.astype(np.uint32)
        wide <<= 16
        out = wide.view(np.float32)
    return out


def f16_to_f32(src: np.ndarray) -> np.ndarray:
    """float16 values (or their uint16 words) to float32, exactly."""
    out = _convert_row("ggml_cpu_fp16_to_fp32", src, np.float32, 2)
    return src.view(np.float16).astype(np.float32) if out is None else out


# bf16 -> f16 goes through float32 a block at a time: the block's float32 copy stays in the CPU's cache
# (64K floats, 256 KB) instead of a whole slice going out to memory and back; 1.7x the rate of two whole-array
# passes on 8 MB slices (4.3 against 2.6 GB/s of input, Xeon, one thread).
_BLOCK = 1 << 16


def bf16_to_f16(words: np.ndarray) -> np.ndarray:
    """bfloat16 words (uint16) to float16, rounded to nearest even: what `f32_to_f16(bf16_to_f32(words))` gives."""
    lib = _row_converters()
    if lib is None:
        return f32_to_f16(bf16_to_f32(words))
    src = np.ascontiguousarray(words)
    if src.dtype.itemsize != 2:
        raise TypeError(f"expected 2-byte words, got {src.dtype}")
    out: np.ndarray = np.empty(src.shape, dtype=np.float16)
    flat_src, flat_out = src.reshape(-1), out.reshape(-1)
    scratch = np.empty(min(_BLOCK, flat_src.size), dtype=np.float32)
    for i in range(0, flat_src.size, _BLOCK):
        n = min(_BLOCK, flat_src.size - i)
        lib.ggml_cpu_bf16_to_fp32(flat_src[i:].ctypes.data, scratch.ctypes.data, n)
        lib.ggml_cpu_fp32_to_fp16(scratch.ctypes.data, flat_out[i:].ctypes.data, n)
    return out
