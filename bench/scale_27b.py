"""What MedGemma 27B would need, computed from its shapes with medcal's own estimates (engine/limits.py) and
the rates bench_scale.py measured at 4B: memory and disk per step, expected time.

    python bench/scale_27b.py [--results /work/cache/scale/results.json]

Time scales with the work per token: a prompt-sized forward pass (imatrix, eval) and quantizing are
compute-bound, so they scale with the weights multiplied per token (every layer plus the output projection);
conversion and copying scale with bytes; generation is memory-bound and scales with the model file's size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import REPO  # noqa: F401  (puts the repository on sys.path)

from medcal_gui.budget.limits import ModelShape, chat_needs, eval_needs, imatrix_needs, quantize_needs

GB = 1e9
# Gemma 3 / MedGemma shapes (config.json text_config)
SHAPES = {
    "4B": dict(n_layer=34, n_embd=2560, n_head=8, n_head_kv=4, head_dim=256, n_ff=10240, n_vocab=262_208),
    "27B": dict(n_layer=62, n_embd=5376, n_head=32, n_head_kv=16, head_dim=128, n_ff=21504, n_vocab=262_208),
}
VISION_PARAMS = 416_866_032  # SigLIP-400M tower + projector, the same in 4B and 27B


def params(s: dict[str, int]) -> dict[str, int]:
    h, q, kv = s["n_embd"], s["n_head"] * s["head_dim"], s["n_head_kv"] * s["head_dim"]
    layer = h * q * 2 + h * kv * 2 + 3 * h * s["n_ff"] + 4 * h + 2 * s["head_dim"]
    embd = s["n_vocab"] * h
    return {"layers": layer * s["n_layer"], "embd": embd, "total": layer * s["n_layer"] + embd + h,
            "per_token": layer * s["n_layer"] + embd}  # the tied output projection runs per token too


def shape(name: str, file_bytes: int) -> ModelShape:
    s = SHAPES[name]
    return ModelShape(path=Path(f"medgemma-{name}.gguf"), file_bytes=file_bytes, n_layer=s["n_layer"],
                      n_embd=s["n_embd"], n_head_kv=s["n_head_kv"], head_dim=s["head_dim"], n_vocab=s["n_vocab"],
                      n_ff=s["n_ff"], n_swa=1024, file_type=1)


def project(results: dict[str, Any]) -> str:
    p4, p27 = params(SHAPES["4B"]), params(SHAPES["27B"])
    f16_4 = 2 * p4["total"]
    f16_27 = 2 * p27["total"]
    work = p27["per_token"] / p4["per_token"]
    size = p27["total"] / p4["total"]
    q4_bytes_4 = int((results.get("quantize_q4_k_m") or {}).get("output_bytes") or 2.49e9)
    q4_27 = int(q4_bytes_4 * size)
    m27, q27 = shape("27B", f16_27), shape("27B", q4_27)
    rows = [f"Parameters: 4B {p4['total'] / 1e9:.2f} B (text), 27B {p27['total'] / 1e9:.2f} B (text); "
            f"per-token work x{work:.2f}, weights x{size:.2f}.", "",
            "| step | 27B memory | 27B disk written | 27B expected time (from the 4B rate measured here) |",
            "|---|---|---|---|"]

    def t(step: str, key: str = "wall_seconds", scale: float = 1.0) -> str:
        r = results.get(step)
        if not r or r.get(key) in (None, 0):
            return "not measured"
        secs = float(r[key]) * scale
        return f"{secs / 60:.0f} min" if secs >= 120 else f"{secs:.0f} s"

    conv = results.get("convert") or {}
    conv_mem = (conv.get("peak_rss_GB") or 0.2) * GB
    rows.append(f"| convert (bf16 -> F16 GGUF) | {conv_mem / GB:.1f} GB (streams; as at 4B) | "
                f"{(f16_27) / GB:.1f} GB (+{2 * VISION_PARAMS / GB:.2f} GB mmproj) | "
                f"{t('convert', scale=f16_27 / max(1, conv.get('output_bytes') or f16_4))} |")
    im = imatrix_needs(m27, 512)
    rows.append(f"| imatrix (512-token chunks) | {im.memory / GB:.1f} GB | < 0.1 GB | "
                f"{t('imatrix', 'loop_seconds', work)} for the chunks run here |")
    qn = quantize_needs(m27, Path("q.gguf"), 4.85, output_bytes=q4_27)
    rows.append(f"| quantize Q4_K_M | {qn.memory / GB:.1f} GB | {q4_27 / GB:.1f} GB | "
                f"{t('quantize_q4_k_m', scale=size)} |")
    ev = eval_needs(m27, [q27], 512, None)
    rows.append(f"| eval (F16 base, then the quant) | {ev.memory / GB:.1f} GB | the cache's bytes per token x "
                f"tokens | {t('eval', scale=work)} |")
    ch = chat_needs(q27, 4096)
    ch16 = chat_needs(m27, 4096)
    rows.append(f"| chat Q4_K_M, 4096-token context (F16: {ch16.memory / GB:.0f} GB) | {ch.memory / GB:.1f} GB | - "
                f"| generation x{q4_27 / q4_bytes_4:.1f} slower than 4B's |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("/work/cache/scale/results.json"))
    a = ap.parse_args()
    results = json.loads(a.results.read_text()) if a.results.is_file() else {}
    print(project(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
