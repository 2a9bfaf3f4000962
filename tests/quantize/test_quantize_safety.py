"""Quantize under hostile conditions, with real processes, signals, file systems and files: the child dies
with its parent, nothing outlives the command, stale partials are cleaned, output paths are checked before
any work, a full disk is named as such, and an imatrix from a smaller model is reported."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.core.errors import InputError, ModelError, OutputError
from medcal_gui.core.fsutil import TMP_PREFIX, check_output_path, stale_partials
from medcal_gui.core.jobs import Progress
from medcal_gui.core.units import format_bytes
from medcal_gui.quantize.quantize import quantize_model

REPO = Path(__file__).resolve().parents[2]


def _group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live (non-zombie) processes in process group `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append((int(entry), cmd))
    return found


def _wait_gone(pgid: int, within_s: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + within_s
    while (left := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # its own session, so its process group is exactly what it started
    return subprocess.Popen([sys.executable, "-m", "medcal_gui", "quantize", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _child_of(pid: int, within_s: float = 60.0) -> int:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for p, cmd in _group_members(pid):
            if p != pid and "resource_tracker" not in cmd:  # the process that runs llama_model_quantize
                return p
        time.sleep(0.05)
    raise AssertionError("the quantize child never started")


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(TMP_PREFIX + "*"))


def _wait_writing(folder: Path, within_s: float = 120.0) -> Path:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for p in _partials(folder):
            try:
                if p.stat().st_size > 8 << 20:
                    return p
            except FileNotFoundError:
                pass
        time.sleep(0.05)
    raise AssertionError("the partial output never grew")


@pytest.fixture
def big_run(demo_model: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    out = tmp_path / "q.gguf"
    proc = _cli("--model", str(demo_model), "--type", "Q4_K_M", "-o", str(out), "--threads", "1")
    try:
        yield proc, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        for pid, _ in _group_members(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_of_quantize_takes_its_child_along_and_the_next_run_removes_the_partial(
        big_run: tuple[subprocess.Popen[str], Path], tiny_model: Path) -> None:
    proc, out = big_run
    child = _child_of(proc.pid)
    partial = _wait_writing(out.parent)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _wait_gone(proc.pid, 3.0) == [], "the quantize child outlived its parent"
    assert not Path(f"/proc/{child}").exists() or b") Z" in Path(f"/proc/{child}/stat").read_bytes()
    size = partial.stat().st_size
    assert stale_partials(out.parent) == [partial]
    # the next run into that folder removes it, and says so
    nxt = _cli("--model", str(tiny_model), "--type", "Q8_0", "-o", str(out.parent / "next.gguf"))
    stdout, stderr = nxt.communicate(timeout=120)
    assert nxt.returncode == 0, stderr
    assert f"Removed {partial.name} ({format_bytes(size)})" in stdout
    assert not partial.exists() and _partials(out.parent) == []


@pytest.mark.slow
def test_sigterm_of_quantize_stops_the_child_and_removes_the_partial(
        big_run: tuple[subprocess.Popen[str], Path]) -> None:
    proc, out = big_run
    _child_of(proc.pid)
    _wait_writing(out.parent)
    os.kill(proc.pid, signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130, stderr
    assert "nothing partial was left behind" in stderr
    assert _wait_gone(proc.pid, 3.0) == []
    assert list(out.parent.iterdir()) == []


def test_nothing_outlives_the_command(tiny_model: Path, tmp_path: Path) -> None:
    proc = _cli("--model", str(tiny_model), "--type", "Q4_K_M", "-o", str(tmp_path / "t.gguf"))
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert _group_members(proc.pid) == [], "processes of medcal quantize's group remain after it ended"


def test_a_partial_of_a_live_process_is_left_alone(tiny_model: Path, tmp_path: Path) -> None:
    live = tmp_path / f"{TMP_PREFIX}{os.getppid()}-abc.gguf.tmp"  # our parent (pytest's runner) is alive
    dead = tmp_path / f"{TMP_PREFIX}999999999-abc.gguf.tmp"
    foreign = tmp_path / "notes.gguf.tmp"
    for p in (live, dead, foreign):
        p.write_bytes(b"x" * 1000)
    res = quantize_model(tiny_model, tmp_path / "t.gguf", "Q8_0")
    assert live.exists() and foreign.exists() and not dead.exists()
    assert any(dead.name in w for w in res.warnings)


@pytest.mark.parametrize("case", ["folder", "dev_null", "dev_full", "sha256_folder", "manifest_folder",
                                  "same_as_model", "parent_is_file"])
def test_bad_output_paths_are_refused_before_any_work(tiny_model: Path, tmp_path: Path, case: str) -> None:
    out = tmp_path / "out.gguf"
    if case == "folder":
        out.mkdir()
    elif case in ("dev_null", "dev_full"):
        # device nodes of our own (never the machine's /dev/null: a regression would replace it)
        out = tmp_path / case
        try:
            os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3 if case == "dev_null" else 7))
        except PermissionError:
            pytest.skip("creating a device node needs root")
    elif case == "sha256_folder":
        (tmp_path / "out.gguf.sha256").mkdir()
    elif case == "manifest_folder":
        (tmp_path / "out.gguf.manifest.json").mkdir()
    elif case == "same_as_model":
        out = tiny_model
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out.gguf"
    before = {p: p.stat().st_mode for p in (out,) if p.exists()}
    seen: list[Progress] = []
    with pytest.raises(OutputError) as exc:
        quantize_model(tiny_model, out, "Q8_0", progress=seen.append)
    msg = exc.value.message
    assert "\n" not in msg and str(out) in msg
    assert seen == [], "work started before the output path was checked"
    assert {p: p.stat().st_mode for p in before} == before  # devices stay devices, folders stay folders
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_check_output_path_messages(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=r"is a folder, not a file"):
        check_output_path(tmp_path / "d")
    with pytest.raises(OutputError, match=r"/dev/full is a device"):
        check_output_path(Path("/dev/full"), what="plot")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match=r"pipe \(FIFO\)"):
        check_output_path(fifo)
    (tmp_path / "r.json.sha256").mkdir()
    with pytest.raises(OutputError, match=r"written beside the output r.json"):
        check_output_path(tmp_path / "r.json", sidecars=[".sha256"])
    src = tmp_path / "in.txt"
    src.write_text("x")
    link = tmp_path / "link.txt"
    link.symlink_to(src)
    with pytest.raises(OutputError, match="same file as the input"):
        check_output_path(link, [src])
    check_output_path(tmp_path / "new" / "deeper" / "ok.gguf", [src])  # fine, and creates nothing
    assert not (tmp_path / "new").exists()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_not_enough_space_is_refused_up_front(tiny_model: Path, tmpfs: Path) -> None:
    (tmpfs / "ballast").write_bytes(b"\0" * (7 << 20))
    with pytest.raises(OutputError, match="Not enough free space"):
        quantize_model(tiny_model, tmpfs / "q.gguf", "Q8_0")
    assert sorted(p.name for p in tmpfs.iterdir()) == ["ballast"]


def test_disk_full_while_writing_says_so(tiny_model: Path, tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The space went after the checks (another program took it): the checks are told there is room, while the
    # tmpfs keeps 1 MB, less than the 2.8 MB output, so the child's writes fail, every time.
    monkeypatch.setenv("MEDCAL_FAKE_FREE_DISK", "1G")
    (tmpfs / "ballast").write_bytes(b"\0" * (7 << 20))
    with pytest.raises(ModelError) as exc:
        quantize_model(tiny_model, tmpfs / "q.gguf", "F16")
    msg = exc.value.message
    assert f"disk full while writing {tmpfs / 'q.gguf'}" in msg and "iostream" not in msg
    assert sorted(p.name for p in tmpfs.iterdir()) == ["ballast"]


@pytest.fixture(scope="module")
def one_layer_imatrix(sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcal_gui.llama.tiny_model import write_tiny_gemma3

    d = tmp_path_factory.mktemp("one_layer")
    small = write_tiny_gemma3(d / "tiny-1-layer.gguf", n_layer=1)
    return compute_imatrix(small, [sample_file], n_ctx=128, n_chunks=2, out=d / "small.imatrix.gguf").out


def test_an_imatrix_from_a_model_with_fewer_layers_is_reported(tiny_model: Path, one_layer_imatrix: Path,
                                                                tmp_path: Path) -> None:
    res = quantize_model(tiny_model, tmp_path / "q.gguf", "Q4_K_M", imatrix=one_layer_imatrix)
    partial = [w for w in res.warnings if "covers only" in w]
    assert len(partial) == 1, res.warnings
    assert "covers only 7 of the model's 14 layer weight matrices: 7 have no entry (blk.1." in partial[0]
    # a type that needs the imatrix for every tensor: the message must not ask for an imatrix
    with pytest.raises(InputError) as exc:
        quantize_model(tiny_model, tmp_path / "q2.gguf", "IQ2_XXS", imatrix=one_layer_imatrix)
    assert "Pass one (--imatrix)" not in exc.value.message
    assert "blk.1." in exc.value.message and "another model" in exc.value.message


def test_the_input_hash_is_reused_only_for_the_same_file_version(tiny_model: Path, tmp_path: Path) -> None:
    import hashlib
    import json
    import shutil

    model = Path(shutil.copy(tiny_model, tmp_path / "m.gguf"))

    def manifest_sha(name: str) -> str:
        quantize_model(model, tmp_path / name, "Q8_0")
        return str(json.loads((tmp_path / f"{name}.manifest.json").read_text())["input"]["sha256"])

    first = manifest_sha("a.gguf")
    assert first == hashlib.sha256(model.read_bytes()).hexdigest()
    assert manifest_sha("b.gguf") == first  # from the cache
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, different content, newer mtime
    model.write_bytes(bytes(data))
    assert manifest_sha("c.gguf") == hashlib.sha256(bytes(data)).hexdigest() != first


def _quantize_children() -> list[int]:
    """Live quantize children of this process."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != b"Z" and b"quantize_child" in cmd:
            found.append(int(entry))
    return found


def test_a_batch_finds_its_children_started_and_leaves_none(tiny_model: Path, tmp_path: Path) -> None:
    """Inside warm_children each quantization takes the child started during the one before (it loaded
    llama.cpp meanwhile), one spare at most waits, and none is left once the block ends: also when it ends
    in an error."""
    from medcal_gui.quantize.quantize_process import warm_children

    assert _quantize_children() == []
    outs = []
    with warm_children():
        for i, t in enumerate(("Q8_0", "Q4_0", "Q8_0")):
            outs.append(quantize_model(tiny_model, tmp_path / f"w{i}.gguf", t, threads=1))
            assert len(_quantize_children()) == 1  # the spare, started while this one ran
    assert [o.output_bytes > 0 for o in outs] == [True] * 3
    assert (tmp_path / "w0.gguf").read_bytes() == (tmp_path / "w2.gguf").read_bytes()
    deadline = time.monotonic() + 5
    while _quantize_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _quantize_children() == []
    with pytest.raises(InputError), warm_children():
        quantize_model(tiny_model, tmp_path / "w3.gguf", "Q8_0", threads=1)
        quantize_model(tiny_model, tmp_path / "missing.gguf", "Q8_0", imatrix=tmp_path / "no.imatrix")
    deadline = time.monotonic() + 5
    while _quantize_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _quantize_children() == []
    # outside a block nothing is kept ready
    quantize_model(tiny_model, tmp_path / "w4.gguf", "Q8_0", threads=1)
    assert _quantize_children() == []
