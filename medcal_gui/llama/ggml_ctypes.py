"""medcal's ctypes edge: ggml structures and functions llama-cpp-python does not bind, and the small C-facing
helpers (callbacks, batch views) the engine needs. The quantize binding and the log callback live in
quantize_ctypes (the quantize child loads them without llama-cpp-python's Python package); they are
re-exported here.

Each binding is preceded by the C declaration it mirrors (llama.cpp as vendored in llama-cpp-python 0.3.36,
`ggml/include/ggml.h`, `ggml/include/ggml-backend.h`, `include/llama.h`). Every callback or array handed
to C is returned to the caller wrapped in an object that keeps it referenced; callers keep that object alive
for as long as C may call or read it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from medcal_gui.core.errors import SetupError
from medcal_gui.llama.quantize_ctypes import (  # noqa: F401 - the quantize binding and the log's ABI facts
    GGML_LOG_LEVEL_CONT,
    GGML_LOG_LEVEL_DEBUG,
    GGML_LOG_LEVEL_ERROR,
    GGML_LOG_LEVEL_INFO,
    GGML_LOG_LEVEL_NONE,
    GGML_LOG_LEVEL_WARN,
    GGML_TYPE_COUNT,
    QuantizeArrays,
    ggml_blck_size,
    ggml_is_quantized,
    ggml_row_size,
    ggml_type_name,
    lib_file,
    make_log_callback,
    model_quantize,
    quantize_params,
    set_log_callback,
)

# #define GGML_MAX_DIMS           4
# #define GGML_MAX_SRC            10
# #define GGML_MAX_OP_PARAMS      64
# #define GGML_MAX_NAME           64
GGML_MAX_DIMS = 4
GGML_MAX_SRC = 10
GGML_MAX_OP_PARAMS = 64
GGML_MAX_NAME = 64

# enum ggml_type { GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, ... GGML_TYPE_I32 = 26, ... };
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_I32 = 26


class GgmlTensor(ctypes.Structure):
    """Mirror of `struct ggml_tensor`.

    struct ggml_tensor {
        enum ggml_type type;
        struct ggml_backend_buffer * buffer;
        int64_t ne[GGML_MAX_DIMS]; // number of elements
        size_t  nb[GGML_MAX_DIMS]; // stride in bytes
        enum ggml_op op;
        int32_t op_params[GGML_MAX_OP_PARAMS / sizeof(int32_t)];
        int32_t flags;
        struct ggml_tensor * src[GGML_MAX_SRC];
        struct ggml_tensor * view_src;
        size_t               view_offs;
        void * data;
        char name[GGML_MAX_NAME];
        void * extra;
        char padding[8];
    };
    """


GgmlTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
    ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.c_void_p * GGML_MAX_SRC),
    ("view_src", ctypes.c_void_p),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * GGML_MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]

# struct ggml_object { size_t offs; size_t size; struct ggml_object * next; enum ggml_object_type type;
#                      char padding[4]; };
GGML_OBJECT_SIZE = 32


def load_ggml(stem: str) -> ctypes.CDLL:
    """One of the ggml libraries that llama-cpp-python ships next to libllama ("ggml-base", "ggml-cpu")."""
    return ctypes.CDLL(str(lib_file(stem)))


_ggml = load_ggml("ggml-base")
# GGML_API const char * ggml_op_name  (enum ggml_op   op);
_ggml.ggml_op_name.argtypes = [ctypes.c_int]
_ggml.ggml_op_name.restype = ctypes.c_char_p

# GGML_API size_t  ggml_nbytes    (const struct ggml_tensor * tensor);
_ggml.ggml_nbytes.argtypes = [ctypes.c_void_p]
_ggml.ggml_nbytes.restype = ctypes.c_size_t

# GGML_API int64_t ggml_nelements (const struct ggml_tensor * tensor);
_ggml.ggml_nelements.argtypes = [ctypes.c_void_p]
_ggml.ggml_nelements.restype = ctypes.c_int64

# GGML_API size_t ggml_tensor_overhead(void);
_ggml.ggml_tensor_overhead.argtypes = []
_ggml.ggml_tensor_overhead.restype = ctypes.c_size_t

# GGML_API bool ggml_backend_buffer_is_host(ggml_backend_buffer_t buffer);
_ggml.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
_ggml.ggml_backend_buffer_is_host.restype = ctypes.c_bool

# GGML_API void ggml_backend_tensor_get(const struct ggml_tensor * tensor, void * data, size_t offset,
#                                       size_t size);
_ggml.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
_ggml.ggml_backend_tensor_get.restype = None






def ggml_op_name(op: int) -> str:
    return (_ggml.ggml_op_name(op) or b"").decode("ascii", "replace")


def ggml_nbytes(t: int) -> int:
    return int(_ggml.ggml_nbytes(t))


def ggml_nelements(t: int) -> int:
    return int(_ggml.ggml_nelements(t))


def ggml_backend_buffer_is_host(buffer: int | None) -> bool:
    # A tensor without a buffer has its data in host memory (ggml_backend_buffer_is_host asserts non-NULL).
    return True if not buffer else bool(_ggml.ggml_backend_buffer_is_host(buffer))


def ggml_backend_tensor_get(t: int, dst: np.ndarray, size: int) -> None:
    _ggml.ggml_backend_tensor_get(t, dst.ctypes.data, 0, size)


def struct_size_matches(tensor_size: int | None = None) -> bool:
    """True when our `GgmlTensor` (or a struct of `tensor_size` bytes) has the size the library reports."""
    size = ctypes.sizeof(GgmlTensor) if tensor_size is None else tensor_size
    return int(_ggml.ggml_tensor_overhead()) - GGML_OBJECT_SIZE == size


_abi_checked = False


def check_abi(tensor_size: int | None = None) -> None:
    """Refuse to read ggml tensors through a mirror of another layout (a segfault or wrong numbers
    otherwise). Checked once per process, before the first graph callback is handed to C."""
    global _abi_checked
    if _abi_checked and tensor_size is None:
        return
    if not struct_size_matches(tensor_size):
        lib = int(_ggml.ggml_tensor_overhead()) - GGML_OBJECT_SIZE
        ours = ctypes.sizeof(GgmlTensor) if tensor_size is None else tensor_size
        raise SetupError(
            f"The installed llama.cpp library does not match this medcal: its ggml tensor is {lib} bytes, "
            f"medcal expects {ours}. Reinstall medcal with the llama-cpp-python version it pins "
            f"(0.3.36; installed {getattr(llama_cpp, '__version__', '?')}).")
    if tensor_size is None:
        _abi_checked = True


def op_ids(*names: str, limit: int = 512) -> dict[str, int]:
    """Look ggml op ids up by name at run time (ggml_op_name indexes a table without a bound check, so
    the scan stops as soon as every wanted name was found; the ops we want are early in the enum)."""
    wanted = set(names)
    found: dict[str, int] = {}
    for i in range(limit):
        name = ggml_op_name(i)
        if name in wanted:
            found[name] = i
            if len(found) == len(wanted):
                return found
    raise RuntimeError(f"ggml ops not found: {sorted(wanted - set(found))}")


def tensor_at(addr: int) -> GgmlTensor:
    return GgmlTensor.from_address(addr)


def tensor_name(t: GgmlTensor) -> str:
    return t.name.decode("utf-8", "replace")


def tensor_f32_view(addr: int, t: GgmlTensor, scratch: list[np.ndarray]) -> np.ndarray:
    """The data of an F32 tensor as a numpy array of shape (ne3, ne2, ne1, ne0), honouring its strides.

    Host buffers are read in place (no copy; valid only during the callback); other buffers are copied with
    ggml_backend_tensor_get into `scratch[0]`, grown as needed.
    """
    ne = tuple(int(x) for x in t.ne)
    nb = tuple(int(x) for x in t.nb)
    nbytes = ggml_nbytes(addr)
    shape = (ne[3], ne[2], ne[1], ne[0])
    strides = (nb[3], nb[2], nb[1], nb[0])
    if ggml_backend_buffer_is_host(t.buffer) and t.data:
        buf: Any = (ctypes.c_char * nbytes).from_address(t.data)
    else:
        if scratch[0].nbytes < nbytes:
            scratch[0] = np.empty(nbytes, dtype=np.uint8)
        ggml_backend_tensor_get(addr, scratch[0], nbytes)
        buf = scratch[0]
    return np.ndarray(shape=shape, dtype=np.float32, buffer=buf, strides=strides)


def tensor_i32_copy(addr: int, t: GgmlTensor) -> np.ndarray:
    """A copy of a (possibly strided) 2-D I32 tensor, shape (ne1, ne0), read with ggml_backend_tensor_get."""
    nbytes = ggml_nbytes(addr)
    raw = np.empty(nbytes, dtype=np.uint8)
    ggml_backend_tensor_get(addr, raw, nbytes)
    view = np.ndarray(shape=(int(t.ne[1]), int(t.ne[0])), dtype=np.int32, buffer=raw,
                      strides=(int(t.nb[1]), int(t.nb[0])))
    return view.copy()


# ---------------------------------------------------------------------------------------------- callbacks


# typedef bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor * t, bool ask, void * user_data);
def make_eval_callback(fn: Callable[[int, bool], bool]) -> Any:
    check_abi()  # the callback reads tensors through GgmlTensor

    def _cb(t: int, ask: bool, _user_data: Any) -> bool:
        return fn(t, ask)

    return llama_cpp.ggml_backend_sched_eval_callback(_cb)


# typedef bool (*ggml_abort_callback)(void * data);
def make_abort_callback(fn: Callable[[], bool]) -> Any:
    def _cb(_data: Any) -> bool:
        return fn()

    return llama_cpp.ggml_abort_callback(_cb)


# LLAMA_API void llama_set_abort_callback(struct llama_context * ctx, ggml_abort_callback abort_callback,
#                                         void * abort_callback_data);
def set_abort_callback(ctx: Any, cb: Any) -> None:
    llama_cpp.llama_set_abort_callback(ctx, cb, ctypes.c_void_p(0))


# ---------------------------------------------------------------------------------------------- batches


@dataclass
class BatchViews:
    """numpy views onto the arrays of a `llama_batch` made by llama_batch_init (one sequence)."""

    batch: Any
    token: np.ndarray
    pos: np.ndarray
    n_seq_id: np.ndarray
    logits: np.ndarray


# LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
def batch_views(batch: Any, capacity: int) -> BatchViews:
    token = np.ctypeslib.as_array(batch.token, shape=(capacity,))
    pos = np.ctypeslib.as_array(batch.pos, shape=(capacity,))
    n_seq_id = np.ctypeslib.as_array(batch.n_seq_id, shape=(capacity,))
    logits = np.ctypeslib.as_array(batch.logits, shape=(capacity,))
    # llama_seq_id ** seq_id: one array per token; sequence 0 for every token.
    for i in range(capacity):
        batch.seq_id[i][0] = 0
    return BatchViews(batch, token, pos, n_seq_id, logits)


# LLAMA_API float * llama_get_logits(struct llama_context * ctx);
def logits_view(ctx: Any, n_rows: int, n_vocab: int) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits(ctx)
    return np.ctypeslib.as_array(ptr, shape=(n_rows, n_vocab))


# LLAMA_API int32_t llama_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
#                                  llama_token * tokens, int32_t n_tokens_max, bool add_special,
#                                  bool parse_special);
def tokenize(vocab: Any, text: bytes, add_special: bool, parse_special: bool) -> np.ndarray:
    n_max = len(text) + 8
    while True:
        arr = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(vocab, text, len(text), arr, n_max, add_special, parse_special)
        if n >= 0:
            return np.ctypeslib.as_array(arr)[:n].astype(np.int32, copy=True)
        n_max = -n


# LLAMA_API int32_t llama_token_to_piece(const struct llama_vocab * vocab, llama_token token, char * buf,
#                                        int32_t length, int32_t lstrip, bool special);
def token_piece(vocab: Any, token: int, special: bool) -> bytes:
    """A token's bytes (special tokens as their text only when `special`); a negative return is the size needed."""
    buf = (ctypes.c_char * 64)()
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = (ctypes.c_char * -n)()
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return bytes(buf.raw[:n])
