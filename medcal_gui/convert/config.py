"""What a Hugging Face Gemma 3 folder's `config.json` says, resolved the way transformers resolves it.

A checkpoint's config.json often leaves values at their defaults: MedGemma 4B's `text_config` names only six
keys. llama.cpp's converter fills the rest through `transformers.AutoConfig`; medcal has no transformers at
run time, so the defaults of `Gemma3TextConfig` are repeated here (they have not changed since Gemma 3 came
out). The shape-giving ones are checked against the tensors before anything is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.convert.card import ModelCard, read_card
from medcal_gui.convert.folder import (
    DOWNLOAD_AGAIN,
    MAX_JSON_BYTES,
    MAX_TOKENIZER_BYTES,
    FolderFileError,
    decode_utf8,
    parse_json,
    present,
    read_bytes,
    read_json,
)
from medcal_gui.convert.values import check_text_config, check_vision_config, rope_section, show
from medcal_gui.core.errors import ModelError

SUPPORTED_ARCHITECTURES = ("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")
_SUPPORTED_TEXT = ("MedGemma 27B text, Gemma 3 1B/270M and other Gemma3ForCausalLM checkpoints; MedGemma 4B "
                   "and other Gemma3ForConditionalGeneration checkpoints (language model, vision tower "
                   "optionally)")

# transformers' Gemma3TextConfig defaults
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "tie_word_embeddings": True,
    "use_bidirectional_attention": False,
}
GLOBAL_ROPE_THETA = 1_000_000.0
LOCAL_ROPE_THETA = 10_000.0
# llama.cpp's Gemma 3 loader: without a pattern key, every 6th layer is global (il % 6 == 5)
LLAMA_SWA_PATTERN = 6
# SigLIP defaults (transformers' SiglipVisionConfig) for the vision tower
VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "image_size": 224, "patch_size": 16, "layer_norm_eps": 1e-6, "num_channels": 3,
}


class NotAModelError(ModelError):
    """The folder is not a Hugging Face model folder."""


class UnsupportedModelError(ModelError):
    """A Hugging Face model medcal cannot convert (architecture or a setting llama.cpp cannot express)."""


@dataclass
class RopeSpec:
    global_theta: float
    local_theta: float
    scaling_type: str | None = None  # None or "linear"
    scaling_factor: float | None = None


@dataclass
class Gemma3Spec:
    hf_dir: Path
    architecture: str
    text: dict[str, Any]
    raw_config: dict[str, Any]
    rope: RopeSpec
    swa_layers: list[bool]  # True where a layer uses sliding-window attention
    write_sliding_window: bool
    vision: dict[str, Any] | None = None
    card: ModelCard = field(default_factory=ModelCard)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_layer(self) -> int:
        return int(self.text["num_hidden_layers"])

    @property
    def multimodal(self) -> bool:
        return self.architecture == "Gemma3ForConditionalGeneration"

    def llama_default_pattern(self) -> list[bool]:
        p = LLAMA_SWA_PATTERN
        return [il % p < p - 1 for il in range(self.n_layer)]


def _load_json(path: Path, what: str) -> dict[str, Any]:
    doc = read_json(path.parent, path, what)
    if not isinstance(doc, dict):
        raise NotAModelError(f"The {what} {path} is not a JSON object. Download the model again.")
    return doc


def read_json_optional(path: Path, what: str = "file", limit: int = MAX_JSON_BYTES) -> dict[str, Any] | None:
    """The JSON object in `path`, a file of the model folder (None where absent or not an object). Bounded,
    inside the folder, and every failure one line naming the file (convert/folder.py)."""
    doc = read_json(path.parent, path, what, limit=limit)
    return doc if isinstance(doc, dict) else None


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def read_json_keys(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Some top-level values of the JSON object in `path` (those present; none where the file is absent),
    parsing only the values up to the last of them. tokenizer.json lists `added_tokens` and `post_processor`
    ahead of the model's vocabulary (33 MB in MedGemma's): `json.loads` of the whole file holds the GIL
    throughout (0.14 s for 6 MB here), a stall of the window while it converts. Anything this walk does not
    expect is left to the whole-file parse and its errors."""
    if not present(path):
        return {}
    data = read_bytes(path.parent, path, path.name, MAX_TOKENIZER_BYTES)
    text = decode_utf8(data, path, path.name, DOWNLOAD_AGAIN)
    dec = json.JSONDecoder()
    found: dict[str, Any] = {}
    try:
        pos = _skip_ws(text, 0)
        if text[pos] != "{":
            raise ValueError("not an object")
        pos = _skip_ws(text, pos + 1)
        while text[pos] != "}" and len(found) < len(keys):
            name, pos = dec.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if not isinstance(name, str) or text[pos] != ":":
                raise ValueError("not a key")
            value, pos = dec.raw_decode(text, _skip_ws(text, pos + 1))
            if name in keys and name not in found:
                found[name] = value
            pos = _skip_ws(text, pos)
            if text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
            elif text[pos] != "}":
                raise ValueError("expected , or }")
        return found
    except (ValueError, IndexError, RecursionError):
        doc = parse_json(text, path, path.name)
        return {k: doc[k] for k in keys if k in doc} if isinstance(doc, dict) else {}


def _architecture(cfg: dict[str, Any], path: Path) -> str:
    archs = cfg.get("architectures") or []
    if isinstance(archs, list) and archs:
        arch = str(archs[0])
    else:
        arch = {"gemma3": "Gemma3ForConditionalGeneration", "gemma3_text": "Gemma3ForCausalLM"}.get(
            str(cfg.get("model_type")), str(cfg.get("model_type") or "unknown"))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"The model in {path.parent} is a {show(arch)}, which medcal cannot convert. Supported: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} ({_SUPPORTED_TEXT}). For other models use llama.cpp's "
            "convert_hf_to_gguf.py."
        )
    return arch


def _rope(text: dict[str, Any], path: Path, prefix: str) -> RopeSpec:
    params = text.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        full = rope_section(params.get("full_attention"), path, prefix + "rope_parameters.full_attention")
        local = rope_section(params.get("sliding_attention"), path, prefix + "rope_parameters.sliding_attention")
    else:  # the older flat form: rope_theta, rope_local_base_freq, rope_scaling (global layers only)
        full = rope_section(text.get("rope_scaling"), path, prefix + "rope_scaling")
        if not full:
            full = rope_section(params, path, prefix + "rope_parameters")
        if "rope_theta" in text:
            full.setdefault("rope_theta", text["rope_theta"])
        local = {"rope_type": "default"}
        if "rope_local_base_freq" in text:
            local["rope_theta"] = text["rope_local_base_freq"]
    spec = RopeSpec(global_theta=float(full.get("rope_theta") or GLOBAL_ROPE_THETA),
                    local_theta=float(local.get("rope_theta") or LOCAL_ROPE_THETA))
    rtype = full.get("rope_type", full.get("type", "default")) or "default"
    if rtype == "linear" and full.get("factor") is not None:
        spec.scaling_type, spec.scaling_factor = "linear", float(full["factor"])
    elif rtype != "default":
        raise UnsupportedModelError(f"{path}: the global layers use RoPE scaling {show(rtype)}; medcal converts "
                                    "Gemma 3 with no or linear RoPE scaling only.")
    ltype = local.get("rope_type", local.get("type", "default")) or "default"
    if ltype != "default":
        raise UnsupportedModelError(f"{path}: the sliding-window layers use RoPE scaling {show(ltype)}, which "
                                    "llama.cpp's Gemma 3 does not apply to those layers.")
    return spec


def read_spec(hf_dir: Path) -> Gemma3Spec:
    """Parse and check `config.json` (every count and shape typed and bounded before anything is built from it)
    and read the model card. Raises NotAModelError / UnsupportedModelError / FolderFileError in plain words."""
    hf_dir = Path(hf_dir)
    path = hf_dir / "config.json"
    if not hf_dir.is_dir():
        raise NotAModelError(f"{hf_dir} is not a folder. Choose the Hugging Face model folder (the one holding "
                             "config.json and the *.safetensors files).")
    if not present(path):
        raise NotAModelError(f"The folder {hf_dir} is not a Hugging Face model folder: it has no config.json. "
                             "Choose the folder you downloaded the model into (it holds config.json, "
                             "tokenizer.model and *.safetensors).")
    cfg = _load_json(path, "model configuration")
    arch = _architecture(cfg, path)
    sub = cfg.get("text_config") if arch == "Gemma3ForConditionalGeneration" else cfg
    prefix = "text_config." if arch == "Gemma3ForConditionalGeneration" else ""
    if sub is not None and not isinstance(sub, dict):
        raise FolderFileError(f'{path}: "text_config" is {show(sub)}; write an object with the language model\'s '
                              'settings, e.g. "text_config": {"hidden_size": 2560}.')
    text = {**TEXT_DEFAULTS, **(sub or {})}
    if "tie_word_embeddings" in cfg and arch == "Gemma3ForConditionalGeneration":
        text["tie_word_embeddings"] = cfg["tie_word_embeddings"]
    check_text_config(text, path, prefix)
    if text.get("attn_logit_softcapping"):
        raise UnsupportedModelError(f"{path}: attn_logit_softcapping is set; Gemma 3 in llama.cpp has none.")
    if text.get("use_bidirectional_attention"):
        raise UnsupportedModelError(f"{path}: bidirectional attention (an embedding model) is not a Gemma 3 "
                                    "language model llama.cpp runs as gemma3.")
    act = str(text.get("hidden_activation") or text.get("hidden_act") or "gelu_pytorch_tanh")
    if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise UnsupportedModelError(f"{path}: activation {show(act)}; llama.cpp's Gemma 3 uses tanh-approximated "
                                    "GELU.")
    rope = _rope(text, path, prefix)

    n_layer = int(text["num_hidden_layers"])
    layer_types = text.get("layer_types")
    pattern = text.get("sliding_window_pattern", text.get("_sliding_window_pattern", 6))
    if isinstance(layer_types, list) and len(layer_types) == n_layer:
        swa = [t == "sliding_attention" for t in layer_types]
    else:
        p = int(pattern or 6)
        swa = [bool((i + 1) % p) for i in range(n_layer)]
    # llama.cpp's converter leaves the window out only for a pattern of 1 (every layer global)
    write_window = (sub or {}).get("sliding_window_pattern") != 1 and text.get("sliding_window") is not None

    # llama.cpp fixes the attention scale itself: 1/sqrt(head_dim), or 1/sqrt(n_embd/n_head) for 62 layers
    head_dim = int(text["head_dim"])
    scale_base = (int(text["hidden_size"]) // int(text["num_attention_heads"])) if n_layer == 62 else head_dim
    if abs(float(text["query_pre_attn_scalar"]) - scale_base) > 1e-6:
        raise UnsupportedModelError(
            f"{path}: query_pre_attn_scalar is {text['query_pre_attn_scalar']}, but llama.cpp scales Gemma 3's "
            f"attention by 1/sqrt({scale_base}) for this size; the converted model would compute differently."
        )
    vision = None
    if arch == "Gemma3ForConditionalGeneration" and cfg.get("vision_config") is not None:
        if not isinstance(cfg["vision_config"], dict):
            raise FolderFileError(f'{path}: "vision_config" is {show(cfg["vision_config"])}; write an object with '
                                  'the vision tower\'s settings, e.g. "vision_config": {"image_size": 896}.')
        vision = {**VISION_DEFAULTS, **cfg["vision_config"]}
        check_vision_config(vision, path)
    card = read_card(hf_dir, cfg)
    return Gemma3Spec(hf_dir=hf_dir, architecture=arch, text=text, raw_config=cfg, rope=rope, swa_layers=swa,
                      write_sliding_window=write_window, vision=vision, card=card, warnings=list(card.warnings))
