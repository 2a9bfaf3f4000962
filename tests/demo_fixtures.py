"""Demo-model artefacts shared by the slow end-to-end tests (prepared once per session).

The sample narratives are split by record: every 4th (9 of 38) is held out for evaluation, in Gemma's chat
layout; the other 29, in the seed layout, are the calibration text. No test scores on its own calibration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.formatting import format_original
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.variants import get_variant

DEMO_IMATRIX_CHUNKS = 8  # 4,096 tokens: enough to separate IQ3_XXS with and without, cheap on 2 cores


def _split(sample_file: Path, folder: Path) -> tuple[Path, Path]:
    records = load_dataset([sample_file]).records
    calib, held = folder / "calibration_narratives.txt", folder / "heldout_narratives.txt"
    calib.write_text("".join(format_original(r) for i, r in enumerate(records, 1) if i % 4), encoding="utf-8")
    held.write_text("".join(format_original(r) for i, r in enumerate(records, 1) if i % 4 == 0),
                    encoding="utf-8")
    return calib, held


@pytest.fixture(scope="session")
def demo_split(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _split(sample_file, tmp_path_factory.mktemp("demo-split"))


@pytest.fixture(scope="session")
def demo_calibration(demo_split: tuple[Path, Path]) -> Path:
    out = demo_split[0].with_name("calibration.txt")
    export_dataset([demo_split[0]], out=out, variant=get_variant("quantization_calibration"), layout="seed")
    return out


@pytest.fixture(scope="session")
def demo_heldout(demo_split: tuple[Path, Path]) -> Path:
    out = demo_split[1].with_name("heldout.txt")
    export_dataset([demo_split[1]], out=out, variant=get_variant("quantization_calibration"), layout="gemma")
    return out


@pytest.fixture(scope="session")
def demo_imatrix(demo_model: Path, demo_calibration: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    out = tmp_path_factory.mktemp("demo-imatrix") / "imatrix.gguf"
    res = compute_imatrix(demo_model, [demo_calibration], n_ctx=512, n_chunks=DEMO_IMATRIX_CHUNKS, out=out)
    assert res.chunks == DEMO_IMATRIX_CHUNKS
    return out


def _quant(demo_model: Path, out: Path, imatrix: Path | None) -> Path:
    from medcal_gui.quantize.quantize import quantize_model

    quantize_model(demo_model, out, "IQ3_XXS", imatrix=imatrix)
    return out


@pytest.fixture(scope="session")
def demo_iq3_with_imatrix(demo_model: Path, demo_imatrix: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _quant(demo_model, tmp_path_factory.mktemp("demo-q") / "demo-IQ3_XXS-imatrix.gguf", demo_imatrix)


@pytest.fixture(scope="session")
def demo_iq3_without_imatrix(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llama.cpp makes IQ3_XXS of Gemma 3 270M without an imatrix (keeping the would-be IQ3_XXS tensors in
    k-quants): the honest "no calibration" baseline."""
    return _quant(demo_model, tmp_path_factory.mktemp("demo-q0") / "demo-IQ3_XXS-plain.gguf", None)
