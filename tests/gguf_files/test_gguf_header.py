"""The quick header reader gives what gguf.GGUFReader gives, and refuses what it cannot follow."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest

from medcal_gui.gguf_files import gguf_header
from medcal_gui.gguf_files.gguf_check import open_gguf
from medcal_gui.gguf_files.gguf_header import HeaderError, read_header


def _same_as_reader(path: Path) -> None:
    header = read_header(path)
    reader = open_gguf(path)
    want = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert header.fields == want
    assert header.version == reader.fields["GGUF.version"].contents()
    assert header.data_start == reader.data_offset
    assert [(t.name, t.shape, t.tensor_type, t.data_offset, t.n_bytes, t.n_elements) for t in header.tensors] == [
        (t.name, tuple(int(x) for x in t.shape), t.tensor_type, int(t.data_offset), int(t.n_bytes),
         int(t.n_elements)) for t in reader.tensors]


def test_the_tiny_model_reads_as_gguf_reads_it(tiny_model: Path) -> None:
    _same_as_reader(tiny_model)


def test_a_header_longer_than_the_first_read_is_read_on(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf_header, "FIRST_READ", 64)  # forces several reads, each 4x longer
    _same_as_reader(tiny_model)


@pytest.mark.slow
def test_the_demo_models_vocabulary_reads_alike_and_quickly(demo_model: Path) -> None:
    """262k tokens: the same values as GGUFReader's in a fraction of its time."""
    _same_as_reader(demo_model)
    t0 = time.perf_counter()
    read_header(demo_model)
    quick = time.perf_counter() - t0
    t0 = time.perf_counter()
    open_gguf(demo_model)
    slow = time.perf_counter() - t0
    assert quick < slow / 4, (quick, slow)


@pytest.mark.parametrize("damage", ["cut", "big-endian", "bad-type"])
def test_what_it_cannot_follow_is_a_header_error(tiny_model: Path, tmp_path: Path, damage: str) -> None:
    data = bytearray(tiny_model.read_bytes())
    header = read_header(tiny_model)
    if damage == "cut":
        data = data[: header.data_start // 2]
    elif damage == "big-endian":
        data[4:8] = (3).to_bytes(4, "big")
    else:  # the first key's value type
        key_len = int.from_bytes(data[24:32], "little")
        data[32 + key_len: 36 + key_len] = (99).to_bytes(4, "little")
    bad = tmp_path / f"{damage}.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(HeaderError):
        read_header(bad)


def test_the_model_shape_from_the_header_is_llamas(tiny_model: Path, demo_model: Path) -> None:
    """limits reads a model's shape from the header (vocabulary counted, not decoded): the same figures
    llama.cpp's own vocab-only load gives."""
    from medcal_gui.budget import limits

    for p in (tiny_model, demo_model):
        size = p.stat().st_size
        limits._shape_cached.cache_clear()
        shape = limits._shape_cached(str(p), size, 0)
        # the tensor totals come from the header only (llama.cpp's vocab-only load leaves them unknown)
        assert dataclasses.replace(shape, n_tensors=0, n_elements=0, data_start=0) == limits._shape_by_llama(
            str(p), size)
        reader = gguf.GGUFReader(p)
        assert shape.n_tensors == len(reader.tensors)
        assert shape.n_elements == sum(int(t.n_elements) for t in reader.tensors)
        assert shape.data_start == min(int(t.data_offset) for t in reader.tensors)
    skipped = read_header(demo_model, decode_strings=False).fields["tokenizer.ggml.tokens"]
    assert len(skipped) == 262_144


def test_shapes_alone_need_no_gguf_py(tiny_model: Path, tmp_path: Path) -> None:
    """check_types=False (the quantize command's model shape and imatrix) reads shapes without importing
    gguf-py (30 ms); with it, an unknown tensor type is a HeaderError."""
    code = ("import sys\nfrom medcal_gui.gguf_files.gguf_header import read_header\n"
            f"h = read_header({str(tiny_model)!r}, decode_strings=False, check_types=False)\n"
            "print('gguf' in sys.modules, len(h.tensors), sum(t.n_elements for t in h.tensors))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    header = read_header(tiny_model)
    assert out == ["False", str(len(header.tensors)), str(sum(t.n_elements for t in header.tensors))]
    # the last tensor's type id: 4 bytes before its offset, the table's last field
    data = bytearray(tiny_model.read_bytes())
    name = header.tensors[-1].name.encode()
    at = data.rindex(name, 0, header.data_start) + len(name)
    n_dims = int.from_bytes(data[at:at + 4], "little")
    type_at = at + 4 + 8 * n_dims
    assert int.from_bytes(data[type_at:type_at + 4], "little") == header.tensors[-1].type_id
    data[type_at:type_at + 4] = (250).to_bytes(4, "little")
    bad = tmp_path / "bad-type.gguf"
    bad.write_bytes(bytes(data))
    assert read_header(bad, check_types=False).tensors[-1].type_id == 250
    with pytest.raises(HeaderError):
        read_header(bad)
