"""The converter's float casts through llama.cpp's CPU backend give numpy's bits, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest

from medcal_gui.llama import row_convert


def _edge_f32() -> np.ndarray:
    rng = np.random.default_rng(7)
    special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e5, -1e5, np.inf, -np.inf,
                        6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 1.0009765625, 1.00048828125, 1.000732421875],
                       dtype=np.float32)
    # every float16 rounding tie around 1 and random values across float16's whole range
    ties = (np.arange(1024, dtype=np.float32) + 0.5) * np.float32(2.0 ** -10) + np.float32(1.0)
    wide = (rng.standard_normal(100_003) * 10.0 ** rng.uniform(-9, 6, 100_003)).astype(np.float32)
    return np.concatenate([special, ties, wide])


def test_the_backend_converters_are_there() -> None:
    """The pinned build has libggml-cpu: the fast path really runs (else the other tests test numpy)."""
    assert row_convert._row_converters() is not None


def test_f32_to_f16_matches_numpy_bit_for_bit() -> None:
    x = _edge_f32()
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    got = row_convert.f32_to_f16(x)
    assert got.dtype == np.float16 and got.shape == x.shape
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))
    nan = row_convert.f32_to_f16(np.array([np.nan], dtype=np.float32))
    assert np.isnan(nan[0])


def test_bf16_and_f16_widen_exactly() -> None:
    words = np.arange(0, 65536, dtype=np.uint32).astype(np.uint16)
    bf = row_convert.bf16_to_f32(words)
    want = (words.astype(np.uint32) << 16).view(np.float32)
    finite = np.isfinite(want)
    assert np.array_equal(bf[finite].view(np.uint32), want[finite].view(np.uint32))
    assert np.array_equal(np.isnan(bf), np.isnan(want))
    h = row_convert.f16_to_f32(words)
    want16 = words.view(np.float16).astype(np.float32)
    ok = ~np.isnan(want16)
    assert np.array_equal(h[ok].view(np.uint32), want16[ok].view(np.uint32))
    assert np.array_equal(np.isnan(h), np.isnan(want16))


def test_a_wrong_word_size_is_refused() -> None:
    with pytest.raises(TypeError):
        row_convert.bf16_to_f32(np.zeros(4, dtype=np.float32))


def test_bf16_to_f16_in_blocks_gives_numpys_bits() -> None:
    """Every bfloat16 word, in a length that is not a multiple of the block, rounded as numpy rounds, and
    the 2-D shape kept."""
    words = np.tile(np.arange(0, 65536, dtype=np.uint32).astype(np.uint16), 3)[:3 * 65536 - 77]
    wide = (words.astype(np.uint32) << 16).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        want = wide.astype(np.float16)
    got = row_convert.bf16_to_f16(words)
    ok = ~np.isnan(want)
    assert got.dtype == np.float16 and got.shape == words.shape
    assert np.array_equal(got[ok].view(np.uint16), want[ok].view(np.uint16))
    assert np.array_equal(np.isnan(got), np.isnan(want))
    rows = row_convert.bf16_to_f16(words[:6 * 1000].reshape(6, 1000))
    assert rows.shape == (6, 1000) and np.array_equal(rows.reshape(-1).view(np.uint16)[ok[:6000]],
                                                      want[:6000][ok[:6000]].view(np.uint16))
    assert row_convert.bf16_to_f16(np.zeros(0, dtype=np.uint16)).shape == (0,)
    with pytest.raises(TypeError):
        row_convert.bf16_to_f16(np.zeros(4, dtype=np.float32))
