"""What the converter tests share: the prompts they tokenize and small helpers over llama.cpp and folders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import gguf
import numpy as np

PROMPT = ("<start_of_turn>user\nThe patient (72 y) has chest pain radiating to the left arm, BP 140/90 mmHg.  "
          "Troponin 0.04 ng/mL; ECG: AF.<end_of_turn>\n<start_of_turn>model\n")
TOKEN_TEXTS = [PROMPT, "Atrial fibrillation, 140/90.\n\n  double  spaces", "é ü 日本 \u2581 tabs\tand 12345",
               "<start_of_turn><end_of_turn><bos>"]


def _llama(path: Path) -> Any:
    import llama_cpp

    from medcal_gui.llama.cpu_quirks import install_llama_defaults

    install_llama_defaults()
    # F32 KV cache: the default F16 cache would round K and V and blur the comparison
    return llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2, type_k=0, type_v=0,
                           flash_attn=False)


def _llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    llm = _llama(path)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def _field(r: gguf.GGUFReader, key: str) -> Any:
    return r.fields[key].contents()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- numbers match transformers


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def gguf_contents(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, tuple[int, ...], str]]]:
    """A GGUF's metadata values, and its tensors by name (type, shape, sha256 of the data): what a file holds,
    whatever the order of its tensors."""
    r = gguf.GGUFReader(str(path))
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    ts = {t.name: (int(t.tensor_type), tuple(int(x) for x in t.shape),
                   hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()) for t in r.tensors}
    return kv, ts
