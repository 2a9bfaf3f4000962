"""One memo of file digests for the whole app: a version is hashed once, a changed file again, and a broken
memo only means hashing again."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from medcal_gui.core import file_hashes as fh


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCAL_CACHE", str(tmp_path / "cache"))


def _counting() -> tuple[list[Path], Callable[[Path], str]]:
    calls: list[Path] = []

    def compute(p: Path) -> str:
        calls.append(p)
        return hashlib.sha256(p.read_bytes()).hexdigest()

    return calls, compute


def test_a_version_is_hashed_once(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"weights" * 1000)
    calls, compute = _counting()
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert fh.file_sha256(f, compute) == want and fh.file_sha256(f, compute) == want
    assert calls == [f]
    assert fh.known_sha256(f) == want
    assert json.loads(fh.memo_path().read_text()) == {fh.version_key(f): want}


def test_a_rewritten_file_is_hashed_again_and_its_old_version_forgotten(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"a" * 100)
    calls, compute = _counting()
    first = fh.file_sha256(f, compute)
    f.write_bytes(b"b" * 100)  # same size, new content and mtime
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    second = fh.file_sha256(f, compute)
    assert first != second == hashlib.sha256(b"b" * 100).hexdigest() and len(calls) == 2
    assert list(json.loads(fh.memo_path().read_text())) == [fh.version_key(f)]


def test_a_broken_memo_means_hashing_again(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x")
    fh.memo_path().parent.mkdir(parents=True)
    for broken in ("{not json", "[1, 2]", ""):
        fh.memo_path().write_text(broken)
        calls, compute = _counting()
        assert fh.file_sha256(f, compute) == hashlib.sha256(b"x").hexdigest() and calls == [f]


def test_only_the_newest_versions_are_kept(tmp_path: Path) -> None:
    files = []
    for i in range(fh.KEEP + 5):
        f = tmp_path / f"f{i}"
        f.write_bytes(str(i).encode())
        fh.remember_sha256(f, hashlib.sha256(str(i).encode()).hexdigest())
        files.append(f)
    memo = json.loads(fh.memo_path().read_text())
    assert len(memo) == fh.KEEP and fh.known_sha256(files[0]) is None
    assert fh.known_sha256(files[-1]) == hashlib.sha256(str(fh.KEEP + 4).encode()).hexdigest()
