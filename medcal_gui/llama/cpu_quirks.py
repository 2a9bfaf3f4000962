"""Work around CPUs that advertise features llama.cpp cannot use in the machine at hand.

Seen: a Firecracker VM on a Sapphire Rapids host reports AMX (amx_tile, and arch_prctl grants the tile
permission), yet ggml's AMX matmul segfaults at its first `ldtilecfg`. ggml picks AMX through its "extra
buffer types", so every quantized model crashes in decode while F16/F32 ones run. The fix is
`llama_model_params.use_extra_bufts = False`.

`extra_bufts_usable()` answers once per machine: on CPUs without AMX it is simply True; with AMX it runs a
tiny quantized model in a spawned child and caches the verdict (`MEDCAL_CPU_EXTRA_BUFTS=0/1` overrides).
`install_llama_defaults()` makes `llama_cpp.Llama` honour the verdict too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _probe_child(folder: str) -> None:
    """Runs in a child: quantize a one-layer tiny model to Q8_0 and decode with extra buffer types on."""
    import llama_cpp

    from medcal_gui.llama import ggml_ctypes as gc
    from medcal_gui.llama.log import route_llama_logs
    from medcal_gui.llama.tiny_model import write_tiny_gemma3

    logging.getLogger("medcal_gui.llama").propagate = False
    route_llama_logs()
    src = write_tiny_gemma3(Path(folder) / "probe-f32.gguf", n_layer=1)
    dst = Path(folder) / "probe-q8.gguf"
    qa = gc.quantize_params(ftype=7, nthread=1, allow_requantize=False, pure=True, dry_run=False,
                            output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
    if gc.model_quantize(src, dst, qa) != 0:
        raise SystemExit(3)
    llm = llama_cpp.Llama(str(dst), n_ctx=64, verbose=False)  # default params: extra bufts on
    llm.eval(llm.tokenize(b"the patient has chest pain and atrial fibrillation " * 2))
    raise SystemExit(0)


def _cache_file() -> Path:
    from medcal_gui.core.resources import user_cache_dir

    return user_cache_dir() / "cpu_quirks.json"


def _machine_key() -> str:
    import llama_cpp

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            model = next((ln for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    raw = f"{model}|{sorted(_cpu_flags())}|{getattr(llama_cpp, '__version__', '')}|{os.uname().release}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@functools.cache
def extra_bufts_usable() -> bool:
    env = os.environ.get("MEDCAL_CPU_EXTRA_BUFTS")
    if env in ("0", "1"):
        return env == "1"
    if "amx_tile" not in _cpu_flags():
        return True
    key = _machine_key()
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
        if key in known:
            return bool(known[key])
    except (OSError, ValueError):
        known = {}
    with tempfile.TemporaryDirectory(prefix="medcal-cpu-probe-") as tmp:
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_probe_child, args=(tmp,), name="medcal-cpu-probe", daemon=True)
        proc.start()
        proc.join(120)
        if proc.is_alive():
            proc.kill()
            proc.join()
        ok = proc.exitcode == 0
    if not ok:
        log.warning("This CPU reports AMX but llama.cpp's AMX kernels crash here (exit %s); using the plain "
                    "CPU kernels instead.", proc.exitcode)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known[key] = ok
        cache.write_text(json.dumps(known))
    except OSError:
        pass
    return ok


def model_params(n_gpu_layers: int = 0) -> Any:
    """`llama_model_default_params()` with the extra buffer types off where they crash."""
    p = _original_defaults()()
    p.n_gpu_layers = n_gpu_layers
    if not extra_bufts_usable():
        p.use_extra_bufts = False
    return p


@functools.cache
def _original_defaults() -> Any:
    import llama_cpp.llama_cpp as low

    return low.llama_model_default_params


_installed = False


def install_llama_defaults() -> None:
    """Make llama-cpp-python's `Llama(...)` use safe model defaults on this machine (idempotent)."""
    global _installed
    if _installed or extra_bufts_usable():
        _installed = True
        return
    import llama_cpp
    import llama_cpp.llama_cpp as low

    orig = _original_defaults()

    def safe_defaults() -> Any:
        p = orig()
        p.use_extra_bufts = False
        return p

    low.llama_model_default_params = safe_defaults
    llama_cpp.llama_model_default_params = safe_defaults
    _installed = True
