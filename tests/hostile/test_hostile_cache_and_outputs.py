"""The evaluation cache and the older commands' outputs on hostile and unlucky paths (issue 25, classes 1, 6
and 9).

Real folders, real FIFOs (os.mkfifo), a real file where a folder has to be (tests run as root, so a chmod would
not stop anything: a path under a regular file is what cannot be written), real evaluations on the tiny GGUF
and real `medcal` processes. Each refusal is one line naming the path and what it is, comes before any work,
and leaves what was there as it was: same names, same bytes, a FIFO still a FIFO.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import medcal_gui
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.ownership import MARKER, is_marked
from medcal_gui.evaluate import eval_cache
from medcal_gui.evaluate.evaluate import evaluate

# the package under test, wherever it is imported from (so this file can be run against another checkout)
SRC = Path(medcal_gui.__file__).resolve().parent.parent
N_CTX = 64


def medcal(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 90) -> tuple[int, str, str]:
    """`medcal ARGS` in a real process (stdin closed: nothing may wait on a terminal)."""
    e = dict(os.environ, PYTHONPATH=str(SRC), **(env or {}))
    r = subprocess.run([sys.executable, "-m", "medcal_gui", *(str(a) for a in args)], capture_output=True,
                       text=True, env=e, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def refused(command: str, *args: object, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """The one-line refusal of `medcal COMMAND ARGS`, given before any work (nothing else on stderr or
    stdout), as its message."""
    rc, out, err = medcal(command, *args, env=env, cwd=cwd)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith(f"medcal {command}: error: "), err
    assert "Traceback" not in err and out == "", (out, err)
    return lines[0].removeprefix(f"medcal {command}: error: ")


def snapshot(folder: Path) -> dict[str, bytes | str | None]:
    """Every path under `folder` (itself included) with its bytes, "fifo" for a FIFO, None for a folder."""
    def one(p: Path) -> bytes | str | None:
        mode = os.lstat(p).st_mode
        return None if stat.S_ISDIR(mode) else "fifo" if stat.S_ISFIFO(mode) else p.read_bytes()

    return {".": one(folder), **{str(p.relative_to(folder)): one(p) for p in folder.rglob("*")}}


@pytest.fixture(scope="module")
def eval_text(sample_file: Path) -> str:
    return sample_file.read_text(encoding="utf-8")[:6000]


@pytest.fixture
def text_file(tmp_path: Path, eval_text: str) -> Path:
    p = tmp_path / "held.txt"
    p.write_text(eval_text, encoding="utf-8")
    return p


@pytest.fixture
def users_folder(tmp_path: Path) -> Path:
    """A folder of the user's: notes and models medcal never wrote."""
    d = tmp_path / "mine"
    (d / "models").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (d / "models" / "precious.gguf").write_bytes(b"GGUF" + bytes(100))
    return d


# -- class 1: the cache deletes only what it wrote ----------------------------------------------------------

def test_cache_clear_refuses_a_users_folder_and_deletes_nothing(users_folder: Path) -> None:
    before = snapshot(users_folder)
    env = {"MEDCAL_EVAL_CACHE": str(users_folder)}
    for args in ((), ("--clear",)):
        msg = refused("cache", *args, env=env)
        assert f"The evaluation cache folder {users_folder} holds files that medcal did not write " in msg
        assert "(models/, notes.txt)" in msg and "MEDCAL_EVAL_CACHE" in msg
    assert snapshot(users_folder) == before


def test_cache_clear_removes_its_entries_and_only_them(tmp_path: Path, tiny_model: Path, eval_text: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("MEDCAL_EVAL_CACHE", str(root))
    r = evaluate(tiny_model, [tiny_model], eval_text, n_ctx=N_CTX, n_chunks=1)
    assert r.cache_dir is not None and r.cache_dir.parent == root
    # both the folder and the entry carry medcal's marker
    assert is_marked(root, eval_cache.ROOT_KIND) and is_marked(r.cache_dir, eval_cache.ENTRY_KIND)
    rc, out, err = medcal("cache", env={"MEDCAL_EVAL_CACHE": str(root)})
    assert rc == 0 and f"evaluation cache {root}: 1 entry, " in out and "(limit 4096 MB)" in out, err
    # a file the user drops in later makes the folder not the cache's own: refused, the entry stays too
    (root / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(root)
    assert "(notes.txt)" in refused("cache", "--clear", env={"MEDCAL_EVAL_CACHE": str(root)})
    assert snapshot(root) == before
    (root / "notes.txt").unlink()
    rc, out, err = medcal("cache", "--clear", env={"MEDCAL_EVAL_CACHE": str(root)})
    assert rc == 0 and re.search(r"cleared: [\d.,]+ [kMG]B freed", out), err
    assert root.is_dir() and os.listdir(root) == []


def test_a_file_dropped_into_an_entry_makes_it_foreign(tmp_path: Path, tiny_model: Path, eval_text: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("MEDCAL_EVAL_CACHE", str(root))
    r = evaluate(tiny_model, [tiny_model], eval_text, n_ctx=N_CTX, n_chunks=1)
    assert r.cache_dir is not None
    (r.cache_dir / "keep-me.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(root)
    msg = refused("cache", "--clear", env={"MEDCAL_EVAL_CACHE": str(root)})
    assert f"({r.cache_dir.name}/)" in msg
    assert snapshot(root) == before
    eval_cache.prune(limit=0, root=root)  # eviction follows the same rule: a folder that is not wholly ours stays
    assert snapshot(root) == before


def test_entries_of_the_old_unmarked_layout_are_recognised_and_cleared(tmp_path: Path) -> None:
    """My call for entries written before markers: recognised by their exact old layout (a 32-hex-digit
    folder holding only the five files, meta.json of format 1-3) and by the old hash memo; cleared."""
    root = tmp_path / "cache"
    old = root / ("ab" * 16)
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"format": 3, "n_chunks": 1}), encoding="utf-8")
    for name in ("tokens.npy", "rows.npz", "ids.i32", "lps.f32"):
        (old / name).write_bytes(b"\0" * 1000)
    (root / "file_hashes.json").write_text(json.dumps({"/m.gguf|1|2": "0" * 64}), encoding="utf-8")
    env = {"MEDCAL_EVAL_CACHE": str(root)}
    rc, out, err = medcal("cache", env=env)
    assert rc == 0 and ": 1 entry, 4 kB (limit" in out, err
    # the same layout with one more file is not the cache's: the whole folder is refused
    (old / "extra.txt").write_text("x", encoding="utf-8")
    assert f"({old.name}/)" in refused("cache", "--clear", env=env)
    (old / "extra.txt").unlink()
    rc, out, err = medcal("cache", "--clear", env=env)
    assert rc == 0 and os.listdir(root) == [], (out, err)


def test_orphan_pruning_leaves_a_folder_with_a_temporary_name_that_is_not_ours(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the id of a process that has exited
    theirs = root / f"{TMP_PREFIX}{dead}-abc"
    (theirs / "sub").mkdir(parents=True)
    (theirs / "data.bin").write_bytes(b"mine")
    ours = root / f"{TMP_PREFIX}{dead}-def"
    ours.mkdir()
    (ours / "ids.i32").write_bytes(b"\0" * 8)
    (ours / MARKER).write_text(json.dumps({"kind": eval_cache.ENTRY_KIND, "by": "medcal"}), encoding="utf-8")
    removed = eval_cache.prune_orphans(root, now=float("inf"))
    assert removed == [ours] and not ours.exists()
    assert (theirs / "data.bin").read_bytes() == b"mine" and (theirs / "sub").is_dir()


def test_eval_leaves_a_users_cache_folder_untouched_and_still_scores(users_folder: Path, tiny_model: Path,
                                                                      text_file: Path) -> None:
    before = snapshot(users_folder)
    rc, out, err = medcal("eval", "--base", tiny_model, "--model", tiny_model, "--text", text_file, "--ctx",
                          N_CTX, "--chunks", 1, "--json", env={"MEDCAL_EVAL_CACHE": str(users_folder)})
    assert rc == 0, err
    d = json.loads(out)
    assert d["models"][0]["kld_mean"] == 0.0 and d["cache_dir"] is None and not d["base_from_cache"]
    warning = next(w for w in d["warnings"] if "evaluation cache was not used" in w)
    assert f"{users_folder} holds files that medcal did not write (models/, notes.txt)" in warning
    assert "evaluation cache was not used" in err  # the log's warning on stderr, beside the JSON
    assert snapshot(users_folder) == before  # no marker, no entry, no temporary folder


# -- class 6: MEDCAL_EVAL_CACHE_MB ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-1", "lots"])
def test_a_bad_cache_size_limit_is_one_line_naming_the_variable(value: str, tmp_path: Path, tiny_model: Path,
                                                                text_file: Path) -> None:
    env = {"MEDCAL_EVAL_CACHE": str(tmp_path / "cache"), "MEDCAL_EVAL_CACHE_MB": value}
    msg = refused("cache", env=env)
    assert msg.startswith("MEDCAL_EVAL_CACHE_MB (the evaluation cache's size limit in MB, e.g. 4096): ")
    assert repr(value) in msg and "write a number between 0 and" in msg
    # eval refuses it before the base pass, not with a traceback after it
    assert refused("eval", "--base", tiny_model, "--model", tiny_model, "--text", text_file, "--ctx", N_CTX,
                   env=env) == msg
    assert not (tmp_path / "cache").exists()


# -- class 9 (d): an unwritable cache only costs the cache -------------------------------------------------

@pytest.mark.parametrize("where", ["under a file", "a file"])
def test_eval_goes_on_without_a_cache_it_cannot_write(where: str, tmp_path: Path, tiny_model: Path,
                                                      text_file: Path) -> None:
    blocker = tmp_path / "cache-file"
    blocker.write_bytes(b"not a folder")
    cache = blocker / "sub" if where == "under a file" else blocker
    rc, out, err = medcal("eval", "--base", tiny_model, "--model", tiny_model, "--text", text_file, "--ctx",
                          N_CTX, "--chunks", 2, env={"MEDCAL_EVAL_CACHE": str(cache)})
    assert rc == 0, err
    assert "tokens scored" in out and "Traceback" not in err
    assert f"warning: The evaluation cache was not used (The evaluation cache folder {cache} " in out
    assert blocker.read_bytes() == b"not a folder"
    assert "MEDCAL_EVAL_CACHE" in refused("cache", "--clear", env={"MEDCAL_EVAL_CACHE": str(cache)})


# -- class 9 (a), (b): outputs that are FIFOs or folders, refused before any work ------------------------------

@pytest.fixture
def work(tmp_path: Path, sample_file: Path, text_file: Path) -> Path:
    """A folder with a formatted calibration text, a FIFO and a folder for outputs to land on."""
    w = tmp_path / "w"
    w.mkdir()
    calib = w / "calib.txt"
    rc, _, err = medcal("format", sample_file, "-o", calib)
    assert rc == 0, err
    os.mkfifo(w / "pipe.out")
    (w / "folder.out").mkdir()
    return w


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("case", ["format -o", "format --latin1-copy", "imatrix -o", "quantize -o",
                                  "quantize .sha256", "eval --plot"])
def test_an_output_that_is_a_fifo_or_a_folder_is_refused_before_the_work(
        case: str, kind: str, work: Path, tiny_model: Path, sample_file: Path, text_file: Path) -> None:
    # the path written: the output itself, or a sidecar beside it (a latin-1 copy, the .sha256)
    target = {"format --latin1-copy": work / "f.latin1.txt", "quantize .sha256": work / "q.gguf.sha256"}.get(
        case, work / ("pipe.out" if kind == "fifo" else "folder.out"))
    if not os.path.lexists(target):
        os.mkfifo(target) if kind == "fifo" else target.mkdir()
    m, c = tiny_model, work / "calib.txt"
    argv: list[object] = {
        "format -o": ["format", sample_file, "-o", target],
        "format --latin1-copy": ["format", sample_file, "-o", work / "f.txt", "--latin1-copy"],
        "imatrix -o": ["imatrix", "-m", m, "--calibration", c, "-o", target, "--ctx", N_CTX, "--chunks", 1],
        "quantize -o": ["quantize", "-m", m, "--type", "Q8_0", "-o", target],
        "quantize .sha256": ["quantize", "-m", m, "--type", "Q8_0", "-o", work / "q.gguf"],
        "eval --plot": ["eval", "--base", m, "--model", m, "--text", text_file, "--ctx", N_CTX, "--plot", target],
    }[case]
    before = snapshot(work)
    msg = refused(str(argv[0]), *argv[1:])
    what = "a pipe (FIFO), not a file" if kind == "fifo" else "a folder, not a file"
    assert f" path {target}" in msg and what in msg, msg
    assert snapshot(work) == before  # the FIFO is still a FIFO; nothing was written beside it


def test_format_into_a_folder_whose_default_name_is_a_folder_is_refused(work: Path, sample_file: Path) -> None:
    out = work / "d"
    (out / "medgemma_calibration_imatrix_formatted.txt").mkdir(parents=True)
    before = snapshot(work)
    for extra in ((), ("--all-variants",)):
        msg = refused("format", sample_file, "-d", out, *extra)
        assert f"{out / 'medgemma_calibration_imatrix_formatted.txt'} is a folder, not a file" in msg
    assert snapshot(work) == before


@pytest.mark.parametrize("kind", ["fifo", "file"])
@pytest.mark.parametrize("case", ["format -d", "pipeline -d", "demo-model -d", "self-test --keep"])
def test_an_output_folder_that_is_a_fifo_or_a_file_is_named_as_such(
        case: str, kind: str, work: Path, tiny_model: Path, sample_file: Path) -> None:
    target = work / "pipe.out" if kind == "fifo" else work / "calib.txt"
    argv: list[object] = {
        "format -d": ["format", sample_file, "-d", target],
        "pipeline -d": ["pipeline", "--narratives", sample_file, "-m", tiny_model, "--type", "Q8_0", "-d", target,
                        "--ctx", N_CTX, "--chunks", 1],
        "demo-model -d": ["demo-model", "-d", target],
        "self-test --keep": ["self-test", "--no-qt", "--keep", target],
    }[case]
    before = snapshot(work)
    msg = refused(str(argv[0]), *argv[1:])
    what = "is a pipe (FIFO), not a folder" if kind == "fifo" else "is a file, not a folder"
    assert f"{target} {what}" in msg and "File exists" not in msg, msg
    assert snapshot(work) == before


# -- class 9 (c): a folder named like a model, or a FIFO, given as an input ----------------------------------

@pytest.mark.parametrize("kind", ["folder", "fifo"])
@pytest.mark.parametrize("case", ["tokens -m", "imatrix -m", "imatrix --in-file", "quantize -m",
                                  "quantize --dry-run -m", "quantize --imatrix", "pipeline -m", "eval --base",
                                  "eval --model", "chat -m", "chat --compare", "inspect"])
def test_a_model_that_is_a_folder_or_a_fifo_is_named_as_such(case: str, kind: str, work: Path, tiny_model: Path,
                                                             sample_file: Path, text_file: Path) -> None:
    bad = work / "x.gguf"
    bad.mkdir() if kind == "folder" else os.mkfifo(bad)
    c, m = work / "calib.txt", tiny_model
    argv: list[object] = {
        "tokens -m": ["tokens", c, "-m", bad],
        "imatrix -m": ["imatrix", "-m", bad, "--calibration", c, "-o", work / "i.gguf", "--ctx", N_CTX],
        "imatrix --in-file": ["imatrix", "-m", m, "--calibration", c, "-o", work / "i.gguf", "--ctx", N_CTX,
                              "--in-file", bad],
        "quantize -m": ["quantize", "-m", bad, "--type", "Q8_0", "-o", work / "q.gguf"],
        "quantize --dry-run -m": ["quantize", "-m", bad, "--type", "Q8_0", "-o", work / "q.gguf", "--dry-run"],
        "quantize --imatrix": ["quantize", "-m", m, "--type", "Q8_0", "-o", work / "q.gguf", "--imatrix", bad],
        "pipeline -m": ["pipeline", "--narratives", sample_file, "-m", bad, "--type", "Q8_0", "-d", work / "run"],
        "eval --base": ["eval", "--base", bad, "--model", m, "--text", text_file, "--ctx", N_CTX],
        "eval --model": ["eval", "--base", m, "--model", bad, "--text", text_file, "--ctx", N_CTX],
        "chat -m": ["chat", "-m", bad, "-p", "hello", "-n", 2],
        "chat --compare": ["chat", "-m", m, "--compare", bad, "-p", "hello", "-n", 2],
        "inspect": ["inspect", bad],
    }[case]
    before = snapshot(work)
    msg = refused(str(argv[0]), *argv[1:])  # a FIFO would hang the reader: refused at once instead
    what = "is a folder, not a file" if kind == "folder" else "is a pipe (FIFO), not a file"
    assert f"{bad} {what}" in msg and "does not exist" not in msg and "empty" not in msg, msg
    assert snapshot(work) == before
