"""Demo-model artefacts shared by the slow end-to-end tests (prepared once per session).

The imatrix comes from the sample narratives in the seed layout; the held-out text for evaluation is the
same narratives in another variant and the gemma layout, so no test scores on its own calibration text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.variants import get_variant

DEMO_IMATRIX_CHUNKS = 8  # 4,096 tokens: enough to separate IQ3_XXS with and without, cheap on 2 cores


@pytest.fixture(scope="session")
def demo_calibration(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-calib") / "calibration.txt"
    export_dataset([sample_file], out=out, variant=get_variant("quantization_calibration"), layout="seed")
    return out


@pytest.fixture(scope="session")
def demo_heldout(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-heldout") / "heldout.txt"
    export_dataset([sample_file], out=out, variant=get_variant("clinical_analysis"), layout="gemma")
    return out


@pytest.fixture(scope="session")
def demo_imatrix(demo_model: Path, demo_calibration: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.engine.imatrix import compute_imatrix

    out = tmp_path_factory.mktemp("demo-imatrix") / "imatrix.gguf"
    res = compute_imatrix(demo_model, [demo_calibration], n_ctx=512, n_chunks=DEMO_IMATRIX_CHUNKS, out=out)
    assert res.chunks == DEMO_IMATRIX_CHUNKS
    return out


def _quant(demo_model: Path, folder: Path, name: str, imatrix: Path | None) -> Path:
    from medcal_gui.engine.quantize import quantize_model

    out = folder / name
    quantize_model(demo_model, out, "IQ3_XXS", imatrix=imatrix)
    return out


@pytest.fixture(scope="session")
def demo_iq3_with_imatrix(demo_model: Path, demo_imatrix: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _quant(demo_model, tmp_path_factory.mktemp("demo-q"), "demo-IQ3_XXS-imatrix.gguf", demo_imatrix)


@pytest.fixture(scope="session")
def demo_iq3_without_imatrix(demo_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IQ3_XXS is marked as requiring an imatrix; a pure-quality baseline needs it computed without one."""
    from medcal_gui.engine.quantize import quantize_model

    out = tmp_path_factory.mktemp("demo-q0") / "demo-IQ3_XXS-plain.gguf"
    quantize_model(demo_model, out, "IQ3_XXS", imatrix=None)
    return out
