"""The mirrored `struct ggml_tensor` is checked against the library before any tensor is read."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.core.errors import SetupError
from medcal_gui.llama import ggml_ctypes as gc


def test_the_pinned_library_matches_the_mirror() -> None:
    assert gc.struct_size_matches()
    gc.check_abi()  # no error
    assert ctypes.sizeof(gc.GgmlTensor) == 336  # 64-bit build of llama-cpp-python 0.3.36


def test_a_mismatched_size_is_a_clear_error() -> None:
    with pytest.raises(SetupError) as err:
        gc.check_abi(tensor_size=ctypes.sizeof(gc.GgmlTensor) + 8)
    msg = err.value.message
    assert "344" in msg and "336" in msg and "llama-cpp-python" in msg and "\n" not in msg


def test_the_check_runs_before_the_first_graph_callback(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a library whose ggml_object grew by 8 bytes: its tensor no longer fits our mirror
    monkeypatch.setattr(gc, "GGML_OBJECT_SIZE", gc.GGML_OBJECT_SIZE - 8)
    monkeypatch.setattr(gc, "_abi_checked", False)
    with pytest.raises(SetupError, match="does not match this medcal"):
        compute_imatrix(tiny_model, ["Some text for the importance matrix. " * 40], n_ctx=64, n_chunks=1)
    assert gc._abi_checked is False  # a failed check is not remembered as passed
