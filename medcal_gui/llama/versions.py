"""One version report for everything that states versions: `--version`, the About box, self-test, and the
manifests written beside every output (medcal, llama.cpp as the loaded libraries report it, llama-cpp-python,
Python; Qt's version is added by the Qt layer)."""

from __future__ import annotations

import platform
import re
import sys

from medcal_gui import __version__


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def versions() -> dict[str, str]:
    """medcal, llama.cpp (libllama and ggml, as the loaded libraries report them), llama-cpp-python, Python.
    Qt's version is added by the caller (this module stays Qt-free)."""
    out = {"medcal": __version__}
    try:
        import ctypes

        import llama_cpp

        out["llama-cpp-python"] = str(getattr(llama_cpp, "__version__", "unknown"))
        libllama = llama_cpp.llama_cpp.llama_version().decode("utf-8", "replace")
        try:
            from medcal_gui.llama import ggml_ctypes as gc

            gv, gcommit = gc._ggml.ggml_version, gc._ggml.ggml_commit
            gv.restype = gcommit.restype = ctypes.c_char_p
            gv.argtypes = gcommit.argtypes = []
            ggml = f"ggml {gv().decode()}, commit {gcommit().decode()}"
        except (AttributeError, OSError):
            ggml = "ggml version unknown"
        out["llama.cpp"] = f"libllama {libllama} ({ggml})"
        out["llama.cpp CPU build"] = " ".join(compiled_cpu_features()) or "baseline"
    except Exception as exc:  # report, never fail: --version must always answer
        out["llama.cpp"] = f"unavailable ({type(exc).__name__}: {exc})"
    impl = platform.python_implementation()
    out["Python"] = f"{platform.python_version()} ({impl}, {platform.system()} {platform.machine()})"
    out["build"] = "stand-alone bundle" if is_frozen() else "source install"
    return out


def compiled_cpu_features() -> list[str]:
    """The instruction sets llama.cpp's CPU backend was compiled for (ggml reports compile-time flags): the
    machine must have all of them, or llama.cpp dies with an illegal instruction at the first model load."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return re.findall(r"(\w+) = 1", info)


def llama_cpp_python_version() -> str:
    """llama-cpp-python's version, without importing the package where it is not loaded yet (the quantize
    child binds libllama on its own): from the installed package's metadata, else from the package."""
    mod = sys.modules.get("llama_cpp")
    if mod is None:
        try:
            from importlib.metadata import version

            return version("llama_cpp_python")
        except Exception:  # noqa: BLE001 - no metadata (a frozen bundle): ask the package itself
            import llama_cpp as mod
    return str(getattr(mod, "__version__", "unknown"))


def manifest_versions() -> dict[str, str]:
    """The short form a manifest records: enough to rebuild the file with the same tools."""
    out = {"medcal": __version__}
    try:
        from medcal_gui.llama.quantize_ctypes import libllama_version

        out["llama_cpp_python"] = llama_cpp_python_version()
        out["libllama"] = libllama_version()
    except Exception:  # noqa: BLE001 - a manifest is written even when the version cannot be read
        out.setdefault("llama_cpp_python", "unknown")
    return out
