"""Shared fixtures: real files, a tiny real Gemma-3 GGUF, and the real demo model (prepared once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "resources" / "samples"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """User variants and settings go to a temp folder; the model cache stays shared across runs, and the
    evaluation cache is fresh for each test session (never base passes written by older code)."""
    home = tmp_path_factory.getbasetemp() / "medcal-home"
    monkeypatch.setenv("MEDCAL_HOME", str(home))
    monkeypatch.setenv("MEDCAL_CACHE", str(cache_root()))
    monkeypatch.setenv("MEDCAL_EVAL_CACHE", str(tmp_path_factory.getbasetemp() / "eval-cache"))


def cache_root() -> Path:
    """Model cache shared across test runs (the demo model takes a while to prepare)."""
    return Path(os.environ.get("MEDCAL_TEST_CACHE", REPO / ".venv" / "medcal-test-cache"))


@pytest.fixture(scope="session")
def sample_file() -> Path:
    files = sorted(SAMPLES.glob("*.txt"))
    assert files, "resources/samples/ holds no sample narratives"
    return files[0]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.llama.tiny_model import write_tiny_gemma3

    return write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "tiny-gemma3-f32.gguf")


@pytest.fixture(scope="session")
def demo_model() -> Path:
    from medcal_gui.modelfile.demo_model import prepare_demo_model

    return prepare_demo_model(cache_root() / "models")


from demo_fixtures import *  # noqa: E402,F401,F403  (demo-model artefacts)
