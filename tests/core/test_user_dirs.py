"""Session fixtures run with the test session's own folders, never the user's real cache or settings."""

from __future__ import annotations

import os

import pytest

KEYS = ("MEDCAL_HOME", "MEDCAL_CACHE", "MEDCAL_EVAL_CACHE", "XDG_CONFIG_HOME")


@pytest.fixture(scope="session")
def seen_by_a_session_fixture() -> dict[str, str | None]:
    """What a session-scoped fixture (set up before any test's own fixtures) finds in the environment."""
    return {k: os.environ.get(k) for k in KEYS}


def test_session_fixtures_see_the_folders_the_tests_see(seen_by_a_session_fixture: dict[str, str | None],
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    assert seen_by_a_session_fixture == {k: os.environ[k] for k in KEYS}
    assert os.environ["MEDCAL_EVAL_CACHE"].startswith(str(tmp_path_factory.getbasetemp()))


def test_a_window_the_tests_start_keeps_its_settings_in_the_session_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`medcal gui` in a process of its own (as the bundle's tests run it) saves the window's settings where
    the session says, not in the user's ~/.config."""
    import subprocess
    import sys
    from pathlib import Path

    config = Path(os.environ["XDG_CONFIG_HOME"])
    assert str(config).startswith(str(Path(os.environ["MEDCAL_EVAL_CACHE"]).parent))
    before = sorted(config.rglob("*")) if config.exists() else []
    subprocess.run([sys.executable, "-m", "medcal_gui", "gui", "--screenshot", str(tmp_path)], check=True,
                   capture_output=True, timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    written = [p for p in sorted(config.rglob("*.ini")) if p not in before]
    assert written or any(p.suffix == ".ini" for p in before), "the window saved no settings under XDG_CONFIG_HOME"
