"""The quantize half of medcal's ctypes edge: `llama_model_quantize`, its parameters, and llama.cpp's log
callback, bound straight from libllama with nothing but ctypes.

ggml_ctypes binds the rest, on top of llama-cpp-python's Python package. This part stands alone because the
quantize child loads it at every quantization: importing llama-cpp-python (numpy, jinja2, its chat formats)
took 0.12 s of the child's 0.14 s start-up, and the quantization waited for it. The library file is the one
llama-cpp-python ships and loads itself (loading a path twice gives the same library), and the structures
mirror llama.h as vendored in llama-cpp-python 0.3.36 (each preceded by its C declaration);
tests/llama/test_quantize_ctypes.py checks them field by field against llama-cpp-python's own.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# enum ggml_type { GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, ... GGML_TYPE_I32 = 26, ... GGML_TYPE_Q2_0 = 42,
#                  GGML_TYPE_COUNT = 43 };
GGML_TYPE_COUNT = 43

# enum ggml_log_level { NONE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4, CONT = 5 };
GGML_LOG_LEVEL_NONE = 0
GGML_LOG_LEVEL_DEBUG = 1
GGML_LOG_LEVEL_INFO = 2
GGML_LOG_LEVEL_WARN = 3
GGML_LOG_LEVEL_ERROR = 4
GGML_LOG_LEVEL_CONT = 5

# enum llama_model_kv_override_type { LLAMA_KV_OVERRIDE_TYPE_INT, _FLOAT, _BOOL, _STR };
LLAMA_KV_OVERRIDE_TYPE_INT = 0
LLAMA_KV_OVERRIDE_TYPE_STR = 3


def lib_dir() -> Path:
    """The folder holding the libraries llama-cpp-python ships (libllama, the ggml libraries), found without
    running the package's Python code; where the import system cannot say (a frozen bundle's importer), the
    package is imported and asked."""
    spec = importlib.util.find_spec("llama_cpp")
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    for place in places:
        if (Path(place) / "lib").is_dir():
            return Path(place) / "lib"
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def lib_file(stem: str) -> Path:
    """One of those libraries ("llama", "ggml-base", "ggml-cpu") by its stem."""
    by_platform = {"win32": [f"{stem}.dll", f"lib{stem}.dll"], "darwin": [f"lib{stem}.dylib", f"lib{stem}.so"]}
    folder = lib_dir()
    for name in by_platform.get(sys.platform, [f"lib{stem}.so"]):
        if (folder / name).exists():
            return folder / name
    raise OSError(f"lib{stem} was not found in {folder}")


if sys.platform == "win32":  # libllama's ggml libraries lie beside it
    import os

    os.add_dll_directory(str(lib_dir()))
_lib = ctypes.CDLL(str(lib_file("llama")))


# struct llama_model_imatrix_data { const char * name; const float * data; size_t size; };
class LlamaModelImatrixData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.POINTER(ctypes.c_float)), ("size", ctypes.c_size_t)]


# struct llama_model_kv_override { enum llama_model_kv_override_type tag; char key[128];
#                                  union { int64_t val_i64; double val_f64; bool val_bool;
#                                          char val_str[128]; }; };
class LlamaModelKvOverrideValue(ctypes.Union):
    _fields_ = [("val_i64", ctypes.c_int64), ("val_f64", ctypes.c_double), ("val_bool", ctypes.c_bool),
                ("val_str", ctypes.c_char * 128)]


class LlamaModelKvOverride(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_int), ("key", ctypes.c_char * 128), ("value", LlamaModelKvOverrideValue)]


# struct llama_model_tensor_override { const char * pattern; enum ggml_type type; };
class LlamaModelTensorOverride(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("type", ctypes.c_int)]


# typedef struct llama_model_quantize_params {
#     int32_t nthread; enum llama_ftype ftype; enum ggml_type output_tensor_type;
#     enum ggml_type token_embedding_type; bool allow_requantize; bool quantize_output_tensor; bool only_copy;
#     bool pure; bool keep_split; bool dry_run; const struct llama_model_imatrix_data * imatrix;
#     const struct llama_model_kv_override * kv_overrides;
#     const struct llama_model_tensor_override * tt_overrides;  // pointer to tensor overrides
#     const int32_t * prune_layers;                             // pointer to layer indices to prune
#     size_t max_buf_size; } llama_model_quantize_params;
class LlamaModelQuantizeParams(ctypes.Structure):
    _fields_ = [
        ("nthread", ctypes.c_int32),
        ("ftype", ctypes.c_int),
        ("output_tensor_type", ctypes.c_int),
        ("token_embedding_type", ctypes.c_int),
        ("allow_requantize", ctypes.c_bool),
        ("quantize_output_tensor", ctypes.c_bool),
        ("only_copy", ctypes.c_bool),
        ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool),
        ("dry_run", ctypes.c_bool),
        ("imatrix", ctypes.POINTER(LlamaModelImatrixData)),
        ("kv_overrides", ctypes.POINTER(LlamaModelKvOverride)),
        ("tt_overrides", ctypes.POINTER(LlamaModelTensorOverride)),
        ("prune_layers", ctypes.POINTER(ctypes.c_int32)),
        ("max_buf_size", ctypes.c_size_t),
    ]


# LLAMA_API struct llama_model_quantize_params llama_model_quantize_default_params(void);
_lib.llama_model_quantize_default_params.argtypes = []
_lib.llama_model_quantize_default_params.restype = LlamaModelQuantizeParams

# LLAMA_API uint32_t llama_model_quantize(const char * fname_inp, const char * fname_out,
#                                         const llama_model_quantize_params * params);
_lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(LlamaModelQuantizeParams)]
_lib.llama_model_quantize.restype = ctypes.c_uint32

# typedef void (*ggml_log_callback)(enum ggml_log_level level, const char * text, void * user_data);
LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

# LLAMA_API void llama_log_set(ggml_log_callback log_callback, void * user_data);
_lib.llama_log_set.argtypes = [LOG_CALLBACK, ctypes.c_void_p]
_lib.llama_log_set.restype = None

# LLAMA_API const char * llama_version(void);
_lib.llama_version.argtypes = []
_lib.llama_version.restype = ctypes.c_char_p


# ggml's type traits (libggml-base, which libllama loads): the sizes a quantized file's tensors take.
_ggml = ctypes.CDLL(str(lib_file("ggml-base")))

# GGML_API const char * ggml_type_name(enum ggml_type type);
_ggml.ggml_type_name.argtypes = [ctypes.c_int]
_ggml.ggml_type_name.restype = ctypes.c_char_p

# GGML_API int64_t ggml_blck_size(enum ggml_type type);
_ggml.ggml_blck_size.argtypes = [ctypes.c_int]
_ggml.ggml_blck_size.restype = ctypes.c_int64

# GGML_API size_t  ggml_row_size (enum ggml_type type, int64_t ne); // size in bytes for all elements in a row
_ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
_ggml.ggml_row_size.restype = ctypes.c_size_t

# GGML_API bool    ggml_is_quantized(enum ggml_type type);
_ggml.ggml_is_quantized.argtypes = [ctypes.c_int]
_ggml.ggml_is_quantized.restype = ctypes.c_bool


def ggml_type_name(type_id: int) -> str:
    """ggml's own name for a type ("q4_K", "q8_0", "f16"); ids from 0 to GGML_TYPE_COUNT - 1 only."""
    if not 0 <= type_id < GGML_TYPE_COUNT:
        raise ValueError(f"ggml type {type_id} is out of range")
    return (_ggml.ggml_type_name(type_id) or b"").decode("ascii", "replace")


def ggml_blck_size(type_id: int) -> int:
    """Values per block (0 for the ids whose support was removed)."""
    if not 0 <= type_id < GGML_TYPE_COUNT:
        raise ValueError(f"ggml type {type_id} is out of range")
    return int(_ggml.ggml_blck_size(type_id))


def ggml_row_size(type_id: int, ne: int) -> int:
    """Bytes of a row of `ne` values (`ne` a multiple of the type's block size)."""
    return int(_ggml.ggml_row_size(type_id, ne))


def ggml_is_quantized(type_id: int) -> bool:
    return bool(_ggml.ggml_is_quantized(type_id))


def libllama_version() -> str:
    return str(_lib.llama_version().decode("utf-8", "replace"))


def make_log_callback(fn: Callable[[int, bytes], None]) -> Any:
    """A C log callback calling `fn(level, text)`; keep it referenced for as long as llama.cpp may call it."""

    def _cb(level: int, text: bytes | None, _user: Any) -> None:
        fn(level, text or b"")

    return LOG_CALLBACK(_cb)


def set_log_callback(cb: Any) -> None:
    _lib.llama_log_set(cb, ctypes.c_void_p(0))


@dataclass
class QuantizeArrays:
    """Keeps alive every buffer `llama_model_quantize_params` points at."""

    params: LlamaModelQuantizeParams
    keep: list[Any]


def quantize_params(*, ftype: int, nthread: int, allow_requantize: bool, pure: bool, dry_run: bool,
                    output_tensor_type: int | None, token_embedding_type: int | None,
                    imatrix: Mapping[str, bytes] | None,
                    kv_overrides: Sequence[tuple[str, int | str]],
                    tt_overrides: Sequence[tuple[str, int]] = (),
                    prune_layers: Sequence[int] = ()) -> QuantizeArrays:
    """`imatrix`: per weight, its importance values as little-endian float32 bytes; `tt_overrides`: (regex,
    ggml type id) pairs, first match wins (llama-quantize --tensor-type); `prune_layers`: layer numbers to
    drop (--prune-layers)."""
    params = _lib.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    params.allow_requantize = allow_requantize
    params.pure = pure
    params.dry_run = dry_run
    if output_tensor_type is not None:
        params.output_tensor_type = output_tensor_type
    if token_embedding_type is not None:
        params.token_embedding_type = token_embedding_type
    keep: list[Any] = []
    if imatrix:
        entries = (LlamaModelImatrixData * (len(imatrix) + 1))()
        for i, (name, values) in enumerate(imatrix.items()):
            if len(values) % 4:
                raise ValueError(f"imatrix entry {name}: {len(values)} bytes are not whole float32 values")
            arr = (ctypes.c_float * (len(values) // 4)).from_buffer_copy(values)
            keep.append(arr)
            entries[i].name = name.encode("utf-8")
            entries[i].data = ctypes.cast(arr, ctypes.POINTER(ctypes.c_float))
            entries[i].size = len(arr)
        # the terminating entry has name NULL (zero-initialised by ctypes)
        keep.append(entries)
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(LlamaModelImatrixData))
    if kv_overrides:
        kvs = (LlamaModelKvOverride * (len(kv_overrides) + 1))()
        for i, (key, value) in enumerate(kv_overrides):
            kvs[i].key = key.encode("utf-8")[:127]
            if isinstance(value, int):
                kvs[i].tag = LLAMA_KV_OVERRIDE_TYPE_INT
                kvs[i].value.val_i64 = value
            else:
                kvs[i].tag = LLAMA_KV_OVERRIDE_TYPE_STR
                kvs[i].value.val_str = value.encode("utf-8")[:127]
        keep.append(kvs)  # the last entry's key[0] == 0 ends the list
        params.kv_overrides = ctypes.cast(kvs, ctypes.POINTER(LlamaModelKvOverride))
    if tt_overrides:
        tts = (LlamaModelTensorOverride * (len(tt_overrides) + 1))()
        for i, (pattern, type_id) in enumerate(tt_overrides):
            raw = ctypes.create_string_buffer(pattern.encode("utf-8"))  # c_char_p fields keep no reference
            keep.append(raw)
            tts[i].pattern = ctypes.cast(raw, ctypes.c_char_p)
            tts[i].type = int(type_id)
        tts[len(tt_overrides)].type = GGML_TYPE_COUNT  # the terminator: pattern NULL, as llama-quantize ends it
        keep.append(tts)
        params.tt_overrides = ctypes.cast(tts, ctypes.POINTER(LlamaModelTensorOverride))
    if prune_layers:
        layers = (ctypes.c_int32 * (len(prune_layers) + 1))(*[int(x) for x in prune_layers], -1)
        keep.append(layers)
        params.prune_layers = ctypes.cast(layers, ctypes.POINTER(ctypes.c_int32))
    return QuantizeArrays(params, keep)


def model_quantize(inp: Path, out: Path, qa: QuantizeArrays) -> int:
    return int(_lib.llama_model_quantize(str(inp).encode(), str(out).encode(), ctypes.byref(qa.params)))
