"""Quantize time per type, whole process, `medcal quantize` against llama.cpp's own `llama-quantize`.

    python bench/bench_quantize.py [--model MODEL.gguf] [--types Q4_K_M] [--threads 2] [--repeat 3]
                                   [--llama-quantize /work/cache/llama-tools/bin/llama-quantize]

An importance matrix is computed first (or given with --imatrix); both tools then quantize the same model
with the same imatrix and thread count, alternately, `--repeat` times each; the median wall times and their
ratio are printed. Everything counts: interpreter start-up, imports, the child process, hashing, sidecars
(medcal's bytecode is compiled first, as an install has it). Before each run, that tool's earlier output is
removed and everything written so far is flushed to disk, so that no run pays for another's writes.
llama-quantize is built from the pinned sdist (see bench/verify_llama_tools.py); without it only medcal's
times are printed. On a shared machine compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from medcal_gui.calibrate.imatrix import compute_imatrix  # noqa: E402
from medcal_gui.llama.tiny_model import write_tiny_gemma3  # noqa: E402

DEFAULT_TOOL = Path("/work/cache/llama-tools/bin/llama-quantize")


def _timed(cmd: list[str], cpu: list[float], cache: Path | None = None) -> float:
    """Wall seconds of `cmd`; appends its CPU seconds (user + system, children included) to `cpu`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if cache is not None:
        env["MEDCAL_CACHE"] = str(cache)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return dt


def _settle(outputs: list[Path]) -> None:
    """Every run starts alike: its own earlier output gone, and nothing any run wrote still waiting to be
    written to disk. Without this, the run that followed another paid for the 253 MB the other had just
    written (the same quantization in-process took 1.10x llama-quantize's time when it ran second, 0.91x when
    it ran first; with this, 1.005x)."""
    for p in outputs:
        p.unlink(missing_ok=True)
    os.sync()


def _same_tensors(a: Path, b: Path) -> str:
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    same = sum(1 for x, y in zip(ra.tensors, rb.tensors, strict=True)
               if x.name == y.name and x.tensor_type == y.tensor_type and x.data.tobytes() == y.data.tobytes())
    return f"{same}/{len(ra.tensors)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--imatrix", type=Path)
    ap.add_argument("--types", nargs="+", default=["Q4_K_M"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--llama-quantize", type=Path, default=DEFAULT_TOOL if DEFAULT_TOOL.exists() else None)
    ap.add_argument("--allow-requantize", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="an empty medcal cache for every run (the input is hashed every time)")
    args = ap.parse_args()
    # An installed medcal has its bytecode compiled (pip does it at install time); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as this workplace sets it) would compile ~50 modules in every run instead.
    import compileall

    compileall.compile_dir(str(REPO / "medcal_gui"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or write_tiny_gemma3(Path(tmp) / "tiny.gguf")
        imatrix = args.imatrix
        if imatrix is None:
            files = sorted((REPO / "resources" / "samples").glob("*.txt"))
            t0 = time.monotonic()
            ctx = 512 if args.model else 128
            res = compute_imatrix(model, files, n_ctx=ctx, n_chunks=4, out=Path(tmp) / "imatrix.gguf")
            imatrix = res.out
            print(f"imatrix: {res.entries} entries, {res.chunks} chunks in {time.monotonic() - t0:.1f} s")
        print(f"model {model.name}: {model.stat().st_size / 1e6:.1f} MB, {args.threads} threads, "
              f"{args.repeat} runs each (median)")
        for qt in args.types:
            med_out, ref_out = Path(tmp) / f"med-{qt}.gguf", Path(tmp) / f"ref-{qt}.gguf"
            med_cmd = [sys.executable, "-m", "medcal_gui", "quantize", "--model", str(model), "--type", qt,
                       "-o", str(med_out), "--imatrix", str(imatrix), "--threads", str(args.threads)]
            if args.allow_requantize:
                med_cmd.append("--allow-requantize")
            ref_cmd = None
            if args.llama_quantize:
                ref_cmd = [str(args.llama_quantize), "--imatrix", str(imatrix)]
                if args.allow_requantize:
                    ref_cmd.append("--allow-requantize")
                ref_cmd += [str(model), str(ref_out), qt, str(args.threads)]
            med_t: list[float] = []
            ref_t: list[float] = []
            med_cpu: list[float] = []
            ref_cpu: list[float] = []
            med_outputs = [med_out, med_out.with_name(med_out.name + ".sha256"),
                           med_out.with_name(med_out.name + ".manifest.json")]
            for i in range(args.repeat):
                if ref_cmd:
                    _settle([ref_out])
                    ref_t.append(_timed(ref_cmd, ref_cpu))
                cache = Path(tempfile.mkdtemp(dir=tmp, prefix=f"cache{i}-")) if args.cold else None
                _settle(med_outputs)
                med_t.append(_timed(med_cmd, med_cpu, cache))
            med, mc = statistics.median(med_t), statistics.median(med_cpu)
            line = (f"{qt:8s} medcal quantize {med:6.2f} s wall ({' '.join(f'{t:.2f}' for t in med_t)}), "
                    f"{mc:.2f} s CPU")
            if ref_t:
                ref, rc = statistics.median(ref_t), statistics.median(ref_cpu)
                pairs = statistics.median(m / r for m, r in zip(med_t, ref_t, strict=True))
                line += (f"\n         llama-quantize  {ref:6.2f} s wall ({' '.join(f'{t:.2f}' for t in ref_t)}), "
                         f"{rc:.2f} s CPU\n         ratio medcal/llama-quantize: wall {med / ref:.3f} (median of "
                         f"the {len(med_t)} pairs' ratios {pairs:.3f}, fastest against fastest "
                         f"{min(med_t) / min(ref_t):.3f}), CPU {mc / rc:.3f}; identical tensors: "
                         f"{_same_tensors(ref_out, med_out)}")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
