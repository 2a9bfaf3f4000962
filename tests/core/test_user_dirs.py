"""Session fixtures run with the test session's own folders, never the user's real cache or settings."""

from __future__ import annotations

import os

import pytest

KEYS = ("MEDCAL_HOME", "MEDCAL_CACHE", "MEDCAL_EVAL_CACHE")


@pytest.fixture(scope="session")
def seen_by_a_session_fixture() -> dict[str, str | None]:
    """What a session-scoped fixture (set up before any test's own fixtures) finds in the environment."""
    return {k: os.environ.get(k) for k in KEYS}


def test_session_fixtures_see_the_folders_the_tests_see(seen_by_a_session_fixture: dict[str, str | None],
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    assert seen_by_a_session_fixture == {k: os.environ[k] for k in KEYS}
    assert os.environ["MEDCAL_EVAL_CACHE"].startswith(str(tmp_path_factory.getbasetemp()))
