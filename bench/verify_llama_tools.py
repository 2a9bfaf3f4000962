"""medcal against llama.cpp's own tools, built from the llama-cpp-python 0.3.36 sdist (not a test: the tools
take minutes to build). Prints: imatrix entries/counts/chunks and the largest relative difference; tensors
identical after llama-quantize and medcal quantize with the same imatrix (Q4_K_M, IQ3_XXS); the same with
per-tensor types (--tensor-type, --tensor-type-file, --prune-layers); and llama-perplexity --kl-divergence next
to medcal eval --no-parse-special. A fourth argument `overrides` runs only the per-tensor type cases.

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    cmake -S llama_cpp_python-0.3.36/vendor/llama.cpp -B llbuild -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release
    cmake --build llbuild --target llama-imatrix llama-quantize llama-perplexity -j2
    python bench/verify_llama_tools.py llbuild/bin "$(medcal demo-model)" OUTDIR

The tools run with --no-repack: medcal turns llama.cpp's extra buffer types (weight repacking) off on CPUs
where they crash (engine/cpu_quirks.py), and repacked kernels round differently (4e-3 relative, seen).
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from medcal_gui.calibrate.imatrix_io import ImatrixData  # noqa: E402
from medcal_gui.quantize.tensor_types import match_tensors, parse_tensor_type  # noqa: E402

B, DEMO, V = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
V.mkdir(parents=True, exist_ok=True)
PY = sys.executable
calib = V / "calib.txt"
subprocess.run(
    [PY, "-m", "medcal_gui", "format", str(REPO / "resources" / "samples"), "-o", str(calib)], check=True, cwd=REPO
)


def run(cmd):
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-3000:])
        raise SystemExit(cmd)
    return r, time.time() - t


def same_tensors(ra: gguf.GGUFReader, rb: gguf.GGUFReader) -> int:
    return sum(
        1
        for x, y in zip(ra.tensors, rb.tensors, strict=True)
        if x.name == y.name and x.tensor_type == y.tensor_type and bytes(x.data.tobytes()) == bytes(y.data.tobytes())
    )


def sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_overrides() -> None:
    """--tensor-type / --tensor-type-file / --prune-layers: medcal quantize against llama-quantize."""
    from medcal_gui import __version__

    rules = ["attn_v=q8_0", r"blk\.[01]\.ffn_down=q6_k", "ffn_up=q5_0"]
    rule_file = V / "rules.txt"
    rule_file.write_text("\n".join(rules) + "\n", encoding="utf-8")
    tt_cli = [x for r in rules for x in ("--tensor-type", r)]
    # medcal writes medcal.version after llama-quantize's own quantize.imatrix.* keys; llama-quantize puts an
    # --override-kv before them. Without an imatrix the same key makes the two files byte for byte equal.
    same_kv = ["--override-kv", f"medcal.version=str:{__version__}"]
    cases = [
        ("tensor-type + imatrix", tt_cli, ["--imatrix", str(V / "ref.imatrix.gguf")], []),
        ("tensor-type-file", ["--tensor-type-file", str(rule_file)], [], same_kv),
        ("tensor-type-file + prune-layers 3,7", ["--tensor-type-file", str(rule_file), "--prune-layers", "3,7"],
         [], same_kv),
    ]
    for label, opts, imx, extra in cases:
        ref_out, med_out = V / "ref-ovr.gguf", V / "med-ovr.gguf"
        for p in (ref_out, med_out):
            p.unlink(missing_ok=True)
        run([str(B / "llama-quantize"), *opts, *imx, *extra, str(DEMO), str(ref_out), "Q4_K_M", "2"])
        run([PY, "-m", "medcal_gui", "quantize", "--model", str(DEMO), "--type", "Q4_K_M", "-o", str(med_out),
             *opts, *imx, "--threads", "2"])
        ra, rb = gguf.GGUFReader(ref_out), gguf.GGUFReader(med_out)
        fa = {k: f.contents() for k, f in ra.fields.items() if not k.startswith("GGUF.")}
        fb = {k: f.contents() for k, f in rb.fields.items() if not k.startswith("GGUF.")}
        differ = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
        over = sum(1 for t in rb.tensors if any(re.search(r.split("=")[0], t.name) for r in rules))
        # what match_tensors predicts (tensors and their bytes) against what llama-quantize wrote
        prune = [int(x) for x in opts[opts.index("--prune-layers") + 1].split(",")] if "--prune-layers" in opts else []
        matches = match_tensors(DEMO, [parse_tensor_type(r) for r in rules], prune_layers=prune)
        written = {t.name: int(t.n_bytes) for t in ra.tensors}
        predicted = all(m.output_bytes == sum(written[n] for n in m.tensors) for m in matches)
        print(f"{label}: identical tensors {same_tensors(ra, rb)} of {len(ra.tensors)} {len(rb.tensors)}; "
              f"{over} tensors named by the rules, match_tensors predicted {sum(len(m.tensors) for m in matches)} "
              f"and their bytes {'exactly' if predicted else 'WRONGLY'}; keys that differ {differ}; "
              f"files byte for byte equal {sha(ref_out) == sha(med_out)} ({ref_out.stat().st_size} bytes)")


IMATRIX_ONLY = len(sys.argv) > 4 and sys.argv[4] == "overrides"
if IMATRIX_ONLY:
    if not (V / "ref.imatrix.gguf").exists():
        run([str(B / "llama-imatrix"), "-m", str(DEMO), "-f", str(calib), "-o", str(V / "ref.imatrix.gguf"), "-c",
             "512", "-b", "512", "--parse-special", "--chunks", "6", "-t", "2", "--no-repack"])
    verify_overrides()
    raise SystemExit(0)

r, t_ref = run(
    [
        str(B / "llama-imatrix"),
        "-m",
        str(DEMO),
        "-f",
        str(calib),
        "-o",
        str(V / "ref.imatrix.gguf"),
        "-c",
        "512",
        "-b",
        "512",
        "--parse-special",
        "--chunks",
        "6",
        "-t",
        "2",
        "--no-repack",
    ]
)
r, t_med = run(
    [
        PY,
        "-m",
        "medcal_gui",
        "imatrix",
        "--model",
        str(DEMO),
        "--calibration",
        str(calib),
        "-o",
        str(V / "med.imatrix.gguf"),
        "--ctx",
        "512",
        "--chunks",
        "6",
        "--threads",
        "2",
    ]
)
a, b = ImatrixData.load(V / "ref.imatrix.gguf"), ImatrixData.load(V / "med.imatrix.gguf")
print(f"imatrix time ref {t_ref:.1f}s medcal {t_med:.1f}s")
print(
    "entries",
    len(a.entries),
    len(b.entries),
    "same names",
    set(a.entries) == set(b.entries),
    "chunks",
    a.chunk_count,
    b.chunk_count,
)
worst = 0.0
cnt_eq = True
for k, ea in a.entries.items():
    eb = b.entries[k]
    cnt_eq &= bool(np.array_equal(ea.counts, eb.counts))
    rel = np.abs(ea.in_sum2 - eb.in_sum2) / np.maximum(np.abs(ea.in_sum2), 1e-30)
    worst = max(worst, float(rel.max()))
print("counts equal", cnt_eq, "max rel diff", worst)

for qt in ("Q4_K_M", "IQ3_XXS"):
    ref_out, med_out = V / f"ref-{qt}.gguf", V / f"med-{qt}.gguf"
    for p in (ref_out, med_out):
        p.unlink(missing_ok=True)
    run([str(B / "llama-quantize"), "--imatrix", str(V / "ref.imatrix.gguf"), str(DEMO), str(ref_out), qt, "2"])
    run(
        [
            PY,
            "-m",
            "medcal_gui",
            "quantize",
            "--model",
            str(DEMO),
            "--type",
            qt,
            "-o",
            str(med_out),
            "--imatrix",
            str(V / "ref.imatrix.gguf"),
            "--threads",
            "2",
        ]
    )
    ra, rb = gguf.GGUFReader(ref_out), gguf.GGUFReader(med_out)
    same = same_tensors(ra, rb)
    kref = {k for k in ra.fields if k.startswith("quantize.")}
    kmed = {k for k in rb.fields if k.startswith("quantize.")}
    print(
        qt,
        "identical tensors",
        same,
        "of",
        len(ra.tensors),
        len(rb.tensors),
        "quantize.* keys equal",
        kref == kmed,
        sorted(kref),
    )

verify_overrides()

held = V / "held.txt"
subprocess.run(
    [
        PY,
        "-m",
        "medcal_gui",
        "format",
        str(REPO / "resources" / "samples"),
        "-o",
        str(held),
        "--layout",
        "gemma",
        "--variant",
        "clinical_analysis",
    ],
    check=True,
    cwd=REPO,
)
q = V / "ref-IQ3_XXS.gguf"


def perplexity(model: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """llama-perplexity on the held-out text, 6 chunks of 512, with the base's log-probs in base.kld."""
    cmd = [str(B / "llama-perplexity"), "-m", str(model), "-f", str(held), "-c", "512", "-b", "512", "-t", "2",
           "--kl-divergence-base", str(V / "base.kld"), "--chunks", "6", "--no-repack", *extra]
    return run(cmd)[0]


perplexity(DEMO)
r = perplexity(q, "--kl-divergence")
lines = [
    ln
    for ln in (r.stdout + r.stderr).splitlines()
    if any(
        s in ln
        for s in (
            "Mean PPL",
            "Mean    KLD",
            "Median  KLD",
            "Maximum KLD",
            "99.0%   KLD",
            "Same top",
            "RMS Δp",
            "Mean    KLD",
        )
    )
]
print("\n".join(lines))
r, _ = run(
    [
        PY,
        "-m",
        "medcal_gui",
        "eval",
        "--base",
        str(DEMO),
        "--model",
        str(q),
        "--text",
        str(held),
        "--ctx",
        "512",
        "--no-parse-special",
        "--threads",
        "2",
        "--json",
        "--chunks",
        "6",
    ]
)
m = json.loads(r.stdout)["models"][0]
print(
    {
        k: m[k]
        for k in (
            "ppl_base",
            "ppl_model",
            "kld_mean",
            "kld_median",
            "kld_p99",
            "kld_max",
            "same_top_pct",
            "rms_dp_pct",
            "tokens_scored",
        )
    }
)
