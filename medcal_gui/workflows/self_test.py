"""`medcal self-test`'s Qt-free part: the whole pipeline on a tiny model, end to end, in a temporary folder.

It checks what a stand-alone bundle can get wrong: the data files (`resources/`), llama.cpp's shared
libraries, the spawned child processes (the quantize child and, on CPUs that report AMX, the CPU probe) and
loading a quantized model. Steps: resources, tiny model, format the sample narratives, CPU check, imatrix,
quantize to Q4_K_M, generate a few tokens. Callers may add their own steps (the CLI adds a headless Qt check).
Nothing is left behind: the folder is removed afterwards, whatever happened.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import MedcalError
from medcal_gui.core.units import format_bytes
from medcal_gui.llama.versions import compiled_cpu_features, is_frozen, versions

QTYPE = "Q4_K_M"
N_CTX = 128
IMATRIX_CHUNKS = 4
GEN_TOKENS = 8
PROMPT = "The patient has chest pain and atrial fibrillation"

# A step gets the work folder and returns a short, human-readable outcome.
StepFn = Callable[[Path], str]


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str
    error: str | None = None
    traceback: str | None = None


@dataclass
class SelfTestResult:
    ok: bool
    frozen: bool
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    workdir: str | None = None

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)

    def summary_line(self) -> str:
        """The one-line result: `medcal self-test: OK (...): step detail; ...; N s`."""
        where = "stand-alone bundle" if self.frozen else "source install"
        done = "; ".join(f"{s.name} {s.detail}" for s in self.steps if s.ok and s.detail)
        bad = self.failed
        if bad is None:
            return f"medcal self-test: OK ({where}, {self.seconds:.1f} s): {done}"
        return (f"medcal self-test: FAILED at step '{bad.name}' ({where}, {self.seconds:.1f} s): {bad.error}"
                + (f" [passed: {', '.join(s.name for s in self.steps if s.ok)}]" if len(self.steps) > 1 else ""))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "frozen": self.frozen, "seconds": round(self.seconds, 3),
                "summary": self.summary_line(),
                "steps": [{"name": s.name, "ok": s.ok, "seconds": round(s.seconds, 3), "detail": s.detail,
                           "error": s.error} for s in self.steps],
                "versions": versions()}


# ggml's feature names -> the Linux /proc/cpuinfo flags they need
_CPUINFO_FLAG = {"SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX_VNNI": "avx_vnni", "AVX2": "avx2",
                 "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
                 "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}


def missing_cpu_features() -> list[str]:
    """Instruction sets llama.cpp was compiled for that this CPU lacks (Linux only; elsewhere: [])."""
    from medcal_gui.llama.cpu_quirks import _cpu_flags

    flags = _cpu_flags()
    if not flags:
        return []
    return [f for f in compiled_cpu_features() if f in _CPUINFO_FLAG and _CPUINFO_FLAG[f] not in flags]


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ---- the steps --------------------------------------------------------------------------------------------


def step_resources(work: Path) -> str:
    from medcal_gui.core.resources import resources_dir, samples_dir
    from medcal_gui.dataset.variants import load_variants
    from medcal_gui.quantize.quant_types import get_quant_type

    root = resources_dir()
    samples = sorted(p for p in samples_dir().iterdir() if p.is_file())
    if not samples:
        raise MedcalError(f"The sample narratives are missing from {samples_dir()}.")
    variants = load_variants()
    get_quant_type(QTYPE)
    return f"{len(variants)} variants, {len(samples)} sample file(s) in {root}"


def step_model(work: Path) -> str:
    from medcal_gui.llama.tiny_model import write_tiny_gemma3

    path = write_tiny_gemma3(work / "tiny-gemma3-f32.gguf")
    return f"{format_bytes(path.stat().st_size)} F32"


def step_format(work: Path) -> str:
    from medcal_gui.core.resources import samples_dir
    from medcal_gui.dataset.export import export_dataset
    from medcal_gui.dataset.variants import DEFAULT_VARIANT, get_variant

    res = export_dataset([samples_dir()], out=work / "calibration.txt", variant=get_variant(DEFAULT_VARIANT))
    if res.records < 1:
        raise MedcalError("Formatting the sample narratives produced no records.")
    return f"{res.records} records"


def step_cpu(work: Path) -> str:
    """Check that this CPU runs the instruction sets llama.cpp was compiled for (before anything runs
    llama.cpp: a missing one kills the process with an illegal instruction), then run cpu_quirks' probe child
    afresh (not from its cache) where it matters: CPUs that report AMX."""
    from medcal_gui.llama import cpu_quirks

    missing = missing_cpu_features()
    if missing:
        raise MedcalError(f"This CPU lacks {', '.join(missing)}, which this build of llama.cpp was compiled for; "
                          "it would crash with an illegal instruction. Use a build made for a baseline CPU "
                          "(README: Stand-alone bundle).")
    if "amx_tile" not in cpu_quirks._cpu_flags():
        return "features ok, AMX probe not needed"
    folder = work / "cpu-probe"
    folder.mkdir()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=cpu_quirks._probe_child, args=(str(folder),), name="medcal-cpu-probe", daemon=True)
    proc.start()
    proc.join(180)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise MedcalError("The CPU probe child did not finish within 180 s.")
    code = proc.exitcode
    if code == 0:
        return "features ok, AMX usable"
    if code is not None and code < 0:
        # killed by a signal: the AMX kernels crashed, the probe's very purpose; medcal uses the plain kernels
        return f"features ok, AMX crashes here (signal {-code}) so plain kernels are used"
    raise MedcalError(f"The CPU probe child failed to run (exit code {code}): the spawned process could not "
                      "start or import medcal.")


def step_imatrix(work: Path) -> str:
    from medcal_gui.calibrate.imatrix import compute_imatrix

    res = compute_imatrix(work / "tiny-gemma3-f32.gguf", [work / "calibration.txt"], n_ctx=N_CTX,
                          n_chunks=IMATRIX_CHUNKS, threads=_threads(), out=work / "imatrix.gguf")
    if res.entries < 1 or res.chunks < 1:
        raise MedcalError(f"The importance matrix is empty ({res.entries} entries, {res.chunks} chunks).")
    return f"{res.chunks} chunks x {N_CTX} tokens, {res.entries} entries"


def step_quantize(work: Path) -> str:
    from medcal_gui.quantize.quantize import quantize_model

    res = quantize_model(work / "tiny-gemma3-f32.gguf", work / f"tiny-{QTYPE}.gguf", QTYPE,
                         imatrix=work / "imatrix.gguf", threads=_threads())
    return f"{res.qtype} {format_bytes(res.output_bytes)} from {format_bytes(res.input_bytes)}, {res.tensors} tensors"


def step_generate(work: Path) -> str:
    import llama_cpp

    from medcal_gui.llama.cpu_quirks import install_llama_defaults
    from medcal_gui.llama.log import route_llama_logs

    route_llama_logs()
    install_llama_defaults()
    llm = llama_cpp.Llama(str(work / f"tiny-{QTYPE}.gguf"), n_ctx=N_CTX, n_threads=_threads(),
                          n_threads_batch=_threads(), seed=0, verbose=False)
    try:
        prompt = llm.tokenize(PROMPT.encode("utf-8"))
        got: list[int] = []
        # Random weights: ignore end-of-generation and take GEN_TOKENS tokens, greedily.
        for tok in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
            got.append(int(tok))
            if len(got) >= GEN_TOKENS:
                break
    finally:
        llm.close()
    if len(got) < GEN_TOKENS:
        raise MedcalError(f"Generation stopped after {len(got)} of {GEN_TOKENS} tokens.")
    return f"{len(got)} tokens from the {QTYPE} model"


STEPS: list[tuple[str, StepFn]] = [
    ("resources", step_resources),
    ("model", step_model),
    ("format", step_format),
    ("cpu", step_cpu),
    ("imatrix", step_imatrix),
    ("quantize", step_quantize),
    ("generate", step_generate),
]


def run_self_test(extra_steps: Sequence[tuple[str, StepFn]] = (), *, keep: Path | None = None,
                  on_step: Callable[[StepResult], None] | None = None) -> SelfTestResult:
    """Run `extra_steps` then STEPS, stopping at the first failure. Works in a temporary folder that is
    removed afterwards (with `keep`, the work is done in that folder instead, and left there)."""
    t0 = time.monotonic()
    result = SelfTestResult(ok=True, frozen=is_frozen())
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="medcal-self-test-", ignore_cleanup_errors=True)
    try:
        work = Path(keep) if keep else Path(tmp.name)  # type: ignore[union-attr]
        work.mkdir(parents=True, exist_ok=True)
        result.workdir = str(work)
        for name, fn in [*extra_steps, *STEPS]:
            ts = time.monotonic()
            try:
                detail = fn(work)
                step = StepResult(name, True, time.monotonic() - ts, detail)
            except Exception as exc:
                msg = exc.message if isinstance(exc, MedcalError) else f"{type(exc).__name__}: {exc}"
                msg = " ".join(msg.split())  # the result is one line
                step = StepResult(name, False, time.monotonic() - ts, "", msg, traceback.format_exc())
            result.steps.append(step)
            if on_step is not None:
                on_step(step)
            if not step.ok:
                result.ok = False
                break
    finally:
        if tmp is not None:
            tmp.cleanup()
    result.seconds = time.monotonic() - t0
    return result
