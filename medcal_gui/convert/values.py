"""Typed, bounded values of a model folder's configuration (config.json, preprocessor_config.json).

Every value that gives a count, a shape or a number is checked before anything is built from it: a
`"vocab_size": 2000000000` built a padded vocabulary of two billion entries before any shape was compared, and
`"num_hidden_layers": "two"` ended in a traceback. The bounds are far above any Gemma 3 (MedGemma 27B: 62
layers, hidden size 5376, 262,208 tokens) and far below what would exhaust a machine. A wrong value is one
line naming the file, the key, and what to write instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medcal_gui.convert.folder import FolderFileError

MAX_VOCAB = 1 << 21  # 2,097,152 tokens: eight times Gemma 3's
MAX_LAYERS = 1024

# key: (lowest, highest, an example to write); whole numbers
TEXT_COUNTS: dict[str, tuple[int, int, int]] = {
    "vocab_size": (1, MAX_VOCAB, 262_208),
    "hidden_size": (1, 1 << 16, 2560),
    "intermediate_size": (1, 1 << 20, 10_240),
    "num_hidden_layers": (1, MAX_LAYERS, 34),
    "num_attention_heads": (1, 1024, 8),
    "num_key_value_heads": (1, 1024, 4),
    "head_dim": (1, 1 << 13, 256),
    "max_position_embeddings": (1, 1 << 24, 131_072),
}
# the same, where null is also allowed
TEXT_OPTIONAL_COUNTS: dict[str, tuple[int, int, int]] = {
    "sliding_window": (1, 1 << 24, 1024),
    "sliding_window_pattern": (1, MAX_LAYERS, 6),
    "_sliding_window_pattern": (1, MAX_LAYERS, 6),
}
# key: (above this, at most this, an example); numbers, finite
TEXT_NUMBERS: dict[str, tuple[float, float, float]] = {
    "rms_norm_eps": (0.0, 1.0, 1e-6),
    "query_pre_attn_scalar": (0.0, 1e9, 256),
}
TEXT_OPTIONAL_NUMBERS: dict[str, tuple[float, float, float]] = {
    "final_logit_softcapping": (0.0, 1e9, 30.0),
    "attn_logit_softcapping": (0.0, 1e9, 50.0),
    "rope_theta": (0.0, 1e12, 1_000_000.0),
    "rope_local_base_freq": (0.0, 1e12, 10_000.0),
}
TEXT_BOOLS = ("tie_word_embeddings", "use_bidirectional_attention")
VISION_COUNTS: dict[str, tuple[int, int, int]] = {
    "hidden_size": (1, 1 << 16, 1152),
    "intermediate_size": (1, 1 << 20, 4304),
    "num_hidden_layers": (1, MAX_LAYERS, 27),
    "num_attention_heads": (1, 1024, 16),
    "image_size": (1, 1 << 14, 896),
    "patch_size": (1, 1 << 14, 14),
    "num_channels": (1, 16, 3),
}
VISION_NUMBERS: dict[str, tuple[float, float, float]] = {"layer_norm_eps": (0.0, 1.0, 1e-6)}


def show(value: Any, limit: int = 60) -> str:
    """A value as JSON writes it (control characters escaped), cut short: messages stay one line."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _wrong(path: Path, key: str, value: Any, what: str, example: Any) -> FolderFileError:
    return FolderFileError(f'{path}: "{key}" is {show(value)}; write {what}, e.g. "{key.rsplit(".", 1)[-1]}": '
                           f"{show(example)}.")


def count(value: Any, path: Path, key: str, low: int, high: int, example: int) -> int:
    """A whole number in [low, high]; booleans, floats, strings and null are refused."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(path, key, value, f"a whole number from {low:,} to {high:,}", example)
    if not low <= value <= high:
        raise _wrong(path, key, value, f"a whole number from {low:,} to {high:,} (the model's own value)", example)
    return value


def number(value: Any, path: Path, key: str, above: float, high: float, example: float) -> float:
    """A finite number in (above, high]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _wrong(path, key, value, f"a number above {above:g} and at most {high:g}", example)
    if not above < value <= high:
        raise _wrong(path, key, value, f"a number above {above:g} and at most {high:g}", example)
    return float(value)


def boolean(value: Any, path: Path, key: str, example: bool) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, key, value, "true or false", example)
    return value


def text(value: Any, path: Path, key: str, example: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, key, value, "a string", example)
    return value


def check_text_config(text_cfg: dict[str, Any], path: Path, prefix: str) -> None:
    """The language model's settings (config.json or its text_config, defaults filled in)."""
    for key, (low, high, ex) in TEXT_COUNTS.items():
        count(text_cfg.get(key), path, prefix + key, low, high, ex)
    for key, (low, high, ex) in TEXT_OPTIONAL_COUNTS.items():
        if text_cfg.get(key) is not None:
            count(text_cfg[key], path, prefix + key, low, high, ex)
    for key, (above, fhigh, fex) in TEXT_NUMBERS.items():
        number(text_cfg.get(key), path, prefix + key, above, fhigh, fex)
    for key, (above, fhigh, fex) in TEXT_OPTIONAL_NUMBERS.items():
        if text_cfg.get(key) is not None:
            number(text_cfg[key], path, prefix + key, above, fhigh, fex)
    for key in TEXT_BOOLS:
        if key in text_cfg:
            boolean(text_cfg[key], path, prefix + key, key == "tie_word_embeddings")
    for key in ("hidden_activation", "hidden_act"):
        if text_cfg.get(key) is not None:
            text(text_cfg[key], path, prefix + key, "gelu_pytorch_tanh")
    types = text_cfg.get("layer_types")
    if types is not None and (not isinstance(types, list) or len(types) > MAX_LAYERS
                              or not all(isinstance(t, str) for t in types)):
        raise _wrong(path, prefix + "layer_types", types,
                     'a list of "sliding_attention" or "full_attention", one per layer', ["sliding_attention"])


def check_vision_config(vision: dict[str, Any], path: Path) -> None:
    for key, (low, high, ex) in VISION_COUNTS.items():
        count(vision.get(key), path, "vision_config." + key, low, high, ex)
    for key, (above, fhigh, fex) in VISION_NUMBERS.items():
        number(vision.get(key), path, "vision_config." + key, above, fhigh, fex)
    if vision["patch_size"] > vision["image_size"]:
        raise _wrong(path, "vision_config.patch_size", vision["patch_size"],
                     f"a whole number no larger than image_size ({vision['image_size']})", 14)


def rope_section(value: Any, path: Path, key: str) -> dict[str, Any]:
    """A RoPE settings object (rope_scaling, rope_parameters or one of its parts); null is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(path, key, value, 'an object or null', {"rope_type": "linear", "factor": 8.0})
    for sub in ("rope_type", "type"):
        if value.get(sub) is not None:
            text(value[sub], path, f"{key}.{sub}", "default")
    if value.get("rope_theta") is not None:
        number(value["rope_theta"], path, f"{key}.rope_theta", 0.0, 1e12, 1_000_000.0)
    if value.get("factor") is not None:
        number(value["factor"], path, f"{key}.factor", 0.0, 1e6, 8.0)
    return dict(value)
