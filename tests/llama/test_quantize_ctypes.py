"""The quantize binding medcal declares itself (for a child that loads no llama-cpp-python package) is the
binding llama-cpp-python declares: the same structures, byte for byte, the same defaults, the same library."""

from __future__ import annotations

import ctypes
import struct
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from medcal_gui.llama import quantize_ctypes as qc

PAIRS = [
    (qc.LlamaModelImatrixData, llama_cpp.llama_model_imatrix_data),
    (qc.LlamaModelKvOverrideValue, llama_cpp.llama_model_kv_override_value),
    (qc.LlamaModelKvOverride, llama_cpp.llama_model_kv_override),
    (qc.LlamaModelTensorOverride, llama_cpp.llama_model_tensor_override),
    (qc.LlamaModelQuantizeParams, llama_cpp.llama_model_quantize_params),
]


def _layout(cls: type) -> list[tuple[str, int, int]]:
    return [(name, getattr(cls, name).offset, getattr(cls, name).size) for name, *_ in cls._fields_]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[t.__name__ for _, t in PAIRS])
def test_each_structure_has_llama_cpp_pythons_layout(ours: type, theirs: type) -> None:
    assert ctypes.sizeof(ours) == ctypes.sizeof(theirs)
    assert ctypes.alignment(ours) == ctypes.alignment(theirs)
    assert _layout(ours) == _layout(theirs)


def test_the_default_parameters_are_the_librarys_own() -> None:
    ours = qc.quantize_params(ftype=15, nthread=3, allow_requantize=False, pure=False, dry_run=False,
                              output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
    theirs = llama_cpp.llama_model_quantize_default_params()
    for name, *_ in theirs._fields_:
        if name in ("ftype", "nthread"):
            continue
        a, b = getattr(ours.params, name), getattr(theirs, name)
        if isinstance(b, int | bool):
            assert a == b, name
        else:  # pointers: NULL in both
            assert not a and not b, name
    assert (ours.params.ftype, ours.params.nthread) == (15, 3)


def test_importance_bytes_reach_the_structure_as_floats() -> None:
    values = [0.5, 2.0, 1e-3]
    raw = struct.pack("<3f", *values)
    qa = qc.quantize_params(ftype=15, nthread=1, allow_requantize=False, pure=False, dry_run=True,
                            output_tensor_type=None, token_embedding_type=None,
                            imatrix={"blk.0.ffn_up.weight": raw}, kv_overrides=[("medcal.x", 7), ("medcal.y", "z")])
    entry = qa.params.imatrix[0]
    assert entry.name == b"blk.0.ffn_up.weight" and entry.size == 3
    assert [entry.data[i] for i in range(3)] == pytest.approx(values)
    assert qa.params.imatrix[1].name is None  # the terminator
    kv = qa.params.kv_overrides
    assert (kv[0].key, kv[0].tag, kv[0].value.val_i64) == (b"medcal.x", qc.LLAMA_KV_OVERRIDE_TYPE_INT, 7)
    assert (kv[1].key, kv[1].tag, kv[1].value.val_str) == (b"medcal.y", qc.LLAMA_KV_OVERRIDE_TYPE_STR, b"z")
    assert kv[2].key == b""
    with pytest.raises(ValueError, match="not whole float32"):
        qc.quantize_params(ftype=15, nthread=1, allow_requantize=False, pure=False, dry_run=True,
                           output_tensor_type=None, token_embedding_type=None, imatrix={"t": b"12345"},
                           kv_overrides=[])


def test_the_library_is_the_one_llama_cpp_python_loads() -> None:
    assert qc.lib_dir().resolve() == (Path(llama_cpp.__file__).resolve().parent / "lib")
    assert qc.lib_file("llama").exists()
    assert qc.libllama_version() == llama_cpp.llama_version().decode()


def test_the_quantize_child_loads_neither_numpy_nor_llama_cpp_python() -> None:
    """What the child imports before its job (and for its manifest): the 0.12 s numpy and llama_cpp cost
    every quantization stays out."""
    code = ("import sys\n"
            "from medcal_gui.quantize import quantize_child\n"
            "from medcal_gui.llama import quantize_ctypes, log_lines\n"
            "from medcal_gui.llama.versions import manifest_versions\n"
            "v = manifest_versions()\n"
            "print(sorted(m for m in ('numpy', 'llama_cpp', 'gguf') if m in sys.modules), v['libllama'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", llama_cpp.llama_version().decode()]
