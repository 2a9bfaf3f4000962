"""The vision tower of a Gemma3ForConditionalGeneration (SigLIP + Gemma 3 projector) as llama.cpp's mmproj file.

As llama.cpp's `Gemma3VisionModel`: architecture `clip`, projector type `gemma3`; the SigLIP pooling head is
dropped; only the projector's `mm_soft_emb_norm` gets +1 (the SigLIP layer norms are ordinary LayerNorms);
the embeddings (patch and position) stay F32, the input projection is always F16, 1-D tensors F32, the rest
take the output type.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gguf
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from medcal_gui.convert.card import add_general_metadata
from medcal_gui.convert.config import Gemma3Spec, UnsupportedModelError, read_json_optional
from medcal_gui.convert.folder import FolderFileError
from medcal_gui.convert.safetensors_io import SafetensorsCheckpoint, ShardError, check_dtype
from medcal_gui.convert.tensors import TensorPlan
from medcal_gui.convert.values import count, number, show

VISION_ROOTS = ("vision_tower.vision_model.", "model.vision_tower.vision_model.")
PROJECTOR_ROOTS = ("multi_modal_projector.", "model.multi_modal_projector.")
_LAYER = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.out_proj": "attn_out", "layer_norm1": "ln1", "layer_norm2": "ln2",
    "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down",
}
_TOP = {"embeddings.patch_embedding": "v.patch_embd", "embeddings.position_embedding": "v.position_embd",
        "post_layernorm": "v.post_ln"}
_QTYPE = {LlamaFileType.ALL_F32: GGMLQuantizationType.F32, LlamaFileType.MOSTLY_F16: GGMLQuantizationType.F16,
          LlamaFileType.MOSTLY_BF16: GGMLQuantizationType.BF16}


def _gguf_name(rest: str) -> str | None:
    """GGUF name for a tensor under the vision model root (None: not part of the mmproj)."""
    stem, _, suffix = rest.rpartition(".")
    if suffix not in ("weight", "bias"):
        return None
    if stem in _TOP:
        return f"{_TOP[stem]}.{suffix}"
    parts = stem.split(".")
    if len(parts) >= 4 and parts[0] == "encoder" and parts[1] == "layers" and parts[2].isdecimal():
        sub = ".".join(parts[3:])
        if sub in _LAYER:
            return f"v.blk.{int(parts[2])}.{_LAYER[sub]}.{suffix}"
    return None


def _preprocessor(hf_dir: Path) -> tuple[dict[str, Any], Path]:
    """The image settings (the later file wins), and the file they came from, for messages."""
    cfg: dict[str, Any] = {}
    source = hf_dir / "preprocessor_config.json"
    for name in ("preprocessor_config.json", "processor_config.json"):
        doc = read_json_optional(hf_dir / name, "image processor settings")
        if doc is not None:
            cfg.update(doc.get("image_processor", {}) if isinstance(doc.get("image_processor"), dict) else {})
            cfg.update(doc)
            source = hf_dir / name
    return cfg, source


def _image_stats(pre: dict[str, Any], path: Path, key: str) -> list[float]:
    value = pre.get(key)
    if value is None:  # SigLIP's own
        return [0.5, 0.5, 0.5]
    if not isinstance(value, list) or len(value) != 3:
        raise FolderFileError(f'{path}: "{key}" is {show(value)}; write one number per colour channel, e.g. '
                              f'"{key}": [0.5, 0.5, 0.5].')
    return [number(v, path, f"{key}[{i}]", -1e6 if key == "image_mean" else 0.0, 1e6, 0.5)
            for i, v in enumerate(value)]


def plan_mmproj(spec: Gemma3Spec, ckpt: SafetensorsCheckpoint, ftype: LlamaFileType
                ) -> tuple[GGUFWriter, list[TensorPlan]]:
    """The mmproj file's metadata (in a GGUFWriter not yet written) and its tensors."""
    v = spec.vision or {}
    qtype = _QTYPE[ftype]
    plans: list[TensorPlan] = []
    for name in ckpt.names():
        root = next((r for r in VISION_ROOTS if name.startswith(r)), None)
        proj = next((r for r in PROJECTOR_ROOTS if name.startswith(r)), None)
        if root is not None:
            rest = name[len(root):]
            if rest.startswith("head."):
                continue  # SigLIP's pooling head: Gemma 3 does not use it
            new = _gguf_name(rest)
        elif proj is not None:
            rest = name[len(proj):].replace("_weight", ".weight")
            new = {"mm_input_projection.weight": "mm.input_projection.weight",
                   "mm_soft_emb_norm.weight": "mm.soft_emb_norm.weight"}.get(rest)
        else:
            continue
        if new is None:
            raise UnsupportedModelError(f"The vision tower holds a tensor medcal does not know ({name!r}); it "
                                        "cannot be written as an mmproj.")
        e = ckpt.entries[name]
        check_dtype(e)
        if new == "mm.input_projection.weight":
            t = GGMLQuantizationType.F16  # llama.cpp keeps it F16 (ggml-org/llama.cpp#13025)
        elif len(e.shape) <= 1 or new.endswith("_norm.weight") or new.startswith(("v.patch_embd", "v.position_embd")):
            t = GGMLQuantizationType.F32
        else:
            t = qtype
        plans.append(TensorPlan(new, e, t, e.shape, add_one=new == "mm.soft_emb_norm.weight"))
    if not any(p.name == "mm.input_projection.weight" for p in plans) or not any(
            p.name == "v.patch_embd.weight" for p in plans):
        raise ShardError(f"The weights in {ckpt.hf_dir} lack the vision tower or its projector: the download is "
                         "incomplete.")

    pre, pre_path = _preprocessor(spec.hf_dir)
    mean, std = _image_stats(pre, pre_path, "image_mean"), _image_stats(pre, pre_path, "image_std")
    seq = count(pre.get("image_seq_length") or 256, pre_path, "image_seq_length", 1, 1 << 20, 256)
    w = GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.MMPROJ])
    w.add_type(gguf.GGUFType.MMPROJ)
    add_general_metadata(w, spec.card, sum(p.n_elements for p in plans))
    w.add_file_type(int(ftype))
    w.add_clip_has_vision_encoder(True)
    w.add_vision_projection_dim(int(spec.text["hidden_size"]))
    w.add_vision_image_size(int(v["image_size"]))
    w.add_vision_patch_size(int(v["patch_size"]))
    w.add_vision_embedding_length(int(v["hidden_size"]))
    w.add_vision_feed_forward_length(int(v["intermediate_size"]))
    w.add_vision_block_count(int(v["num_hidden_layers"]))
    w.add_vision_head_count(int(v["num_attention_heads"]))
    w.add_vision_image_mean(mean)
    w.add_vision_image_std(std)
    w.add_clip_projector_type(gguf.VisionProjectorType.GEMMA3)
    w.add_vision_attention_layernorm_eps(float(v.get("layer_norm_eps", 1e-6)))
    w.add_vision_use_gelu(True)
    n_per_side = int(math.sqrt(seq))
    scale = (int(v["image_size"]) // int(v["patch_size"])) // max(1, n_per_side)
    if scale > 0 and scale != 4:
        w.add_vision_projector_scale_factor(scale)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    return w, plans
