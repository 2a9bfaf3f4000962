"""The converter tests' tiny Hugging Face checkpoints, built once per session (hf_fixture.py makes them)."""

from __future__ import annotations

from pathlib import Path

import hf_fixture as hf
import pytest

from medcal_gui.convert.hf_to_gguf import convert_hf

MISSING = hf.missing_reason()

# ---------------------------------------------------------------- fixtures (built once per session)

@pytest.fixture(scope="session")
def sp_model() -> bytes:
    if MISSING:
        pytest.skip(f"HF reference unavailable: {MISSING}")
    return hf.train_sentencepiece()


@pytest.fixture(scope="session")
def hf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="session")
def causal_dir(hf_root: Path, sp_model: bytes) -> Path:
    return hf.make_causal(hf_root / "causal" / "tiny-gemma3", sp_model)


@pytest.fixture(scope="session")
def cond_dir(hf_root: Path, sp_model: bytes) -> Path:
    return hf.make_conditional(hf_root / "cond" / "tiny-medgemma", sp_model)


@pytest.fixture(scope="session")
def causal_f32(causal_dir: Path, hf_root: Path) -> Path:
    return convert_hf(causal_dir, hf_root / "out" / "causal-f32.gguf", outtype="f32").out


@pytest.fixture(scope="session")
def cond_f32(cond_dir: Path, hf_root: Path) -> Path:
    return convert_hf(cond_dir, hf_root / "out" / "cond-f32.gguf", outtype="f32").out
