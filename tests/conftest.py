"""Shared fixtures: real files, a tiny real Gemma-3 GGUF, and the real demo model (prepared once)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "resources" / "samples"


def _user_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """User variants and settings go to a temp folder; the model cache stays shared across runs, and the
    evaluation cache is fresh for each test session (never base passes written by older code). Qt keeps the
    window's settings under XDG_CONFIG_HOME: a `medcal gui` the tests start (the bundle's commands) wrote its
    last model, a test-cache path, into the user's own ~/.config/medcal/medcal.ini."""
    base = tmp_path_factory.getbasetemp()
    return {"MEDCAL_HOME": str(base / "medcal-home"), "MEDCAL_CACHE": str(cache_root()),
            "MEDCAL_EVAL_CACHE": str(base / "eval-cache"), "XDG_CONFIG_HOME": str(base / "xdg-config")}


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs_for_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for session fixtures (a demo quant, say), which are set up before any test's own fixtures: so
    that nothing they run reads or writes the user's real cache."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _user_dirs(tmp_path_factory).items():
            mp.setenv(k, v)
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in _user_dirs(tmp_path_factory).items():
        monkeypatch.setenv(k, v)  # again per test: a test may have changed or removed one


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
    from medcal_gui.gguf_files.demo_model import prepare_demo_model

    return prepare_demo_model(cache_root() / "models")


from demo_fixtures import *  # noqa: E402,F401,F403  (demo-model artefacts)
