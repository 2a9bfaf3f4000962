"""medcal's own marker: the one rule by which every clean-up path decides what it may delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.core.errors import OutputError
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.ownership import MARKER, is_marked, mark_folder, remove_marked


def test_an_unmarked_folder_is_never_removed(tmp_path: Path) -> None:
    user = tmp_path / "work"
    user.mkdir()
    (user / "notes.txt").write_text("mine", encoding="utf-8")
    assert remove_marked(user, "recipe-work") is False
    assert (user / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_folder_holding_the_users_files_is_not_adopted(tmp_path: Path) -> None:
    user = tmp_path / "work"
    (user / "models").mkdir(parents=True)
    (user / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match=r"\(models, notes.txt\)"):
        mark_folder(user, "recipe-work")
    assert sorted(p.name for p in user.iterdir()) == ["models", "notes.txt"]  # no marker written


def test_marked_folders_are_removed_only_for_their_own_kind(tmp_path: Path) -> None:
    ours = tmp_path / "a" / "b"
    mark_folder(ours, "ladder-rungs")
    assert sorted(p.name for p in ours.iterdir()) == [MARKER]  # no temporary name left beside it
    assert not any(p.name.startswith(TMP_PREFIX) for p in ours.iterdir())
    assert is_marked(ours, "ladder-rungs") and not is_marked(ours, "eval-cache")
    assert remove_marked(ours, "eval-cache") is False and ours.is_dir()
    assert remove_marked(ours, "ladder-rungs") is True and not ours.exists()


def test_a_linked_folder_or_marker_does_not_count(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    mark_folder(ours, "k")
    link = tmp_path / "link"
    link.symlink_to(ours)
    assert is_marked(ours, "k") and not is_marked(link, "k")
    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER).symlink_to(ours / MARKER)
    assert not is_marked(other, "k")
