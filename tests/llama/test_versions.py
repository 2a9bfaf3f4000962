"""One version report: --version, the About box and the manifests state the same versions."""

from __future__ import annotations

import llama_cpp

from medcal_gui import __version__
from medcal_gui.llama.versions import manifest_versions, versions


def test_the_report_and_the_manifest_agree_with_the_loaded_libraries() -> None:
    full, short = versions(), manifest_versions()
    assert full["medcal"] == short["medcal"] == __version__
    assert full["llama-cpp-python"] == short["llama_cpp_python"] == llama_cpp.__version__
    libllama = llama_cpp.llama_cpp.llama_version().decode()
    assert short["libllama"] == libllama and full["llama.cpp"].startswith(f"libllama {libllama} (ggml ")


def test_the_about_box_states_the_same_versions(qapp) -> None:  # type: ignore[no-untyped-def]
    from medcal_gui.ui.main_window import about_text

    v = versions()
    text = about_text()
    assert v["llama.cpp"] in text and v["llama-cpp-python"] in text and v["Python"] in text
