"""The probe fit: class and depth weights recovered from probe figures made with known weights."""

from __future__ import annotations

import pytest

from medcal_gui.workflows.recipe.candidates import TensorOptions
from medcal_gui.workflows.recipe.probes import ProbeFit, _fit, layer_of, tensor_class

CLASSES = {"embeddings": ["token_embd", "output"], "attn": ["attn_q"], "ffn": ["ffn_down"]}


def _tensor(name: str, delta: float) -> TensorOptions:
    return TensorOptions(name, (256, 256), "F16", {"Q8_0": (100, 0.0), "Q3_K": (40, delta)},
                         took={"Q8_0": "Q8_0", "Q3_K": "Q3_K"})


def test_fit_recovers_the_weights_that_made_the_probes() -> None:
    true_class = {"embeddings": 2.0, "attn": 0.5, "ffn": 3.0}
    true_band = [1.0, 4.0]
    tensors = [_tensor("token_embd.weight", 7.0)]
    for layer in range(4):
        tensors += [_tensor(f"blk.{layer}.attn_q.weight", 1.0 + layer), _tensor(f"blk.{layer}.ffn_down.weight", 2.0)]
    fit = ProbeFit({}, [1.0, 1.0], 4, 2, "Q3_K", "Q8_0", 0.0)

    def truth(t: TensorOptions) -> float:
        b = fit.band(t.name)
        return true_class[tensor_class(t.name, CLASSES)] * (true_band[b] if b is not None else 1.0) * \
            t.options["Q3_K"][1]

    groups = [("class", c, [t for t in tensors if tensor_class(t.name, CLASSES) == c]) for c in CLASSES]
    groups += [("band", str(b), [t for t in tensors if fit.band(t.name) == b]) for b in range(2)]
    dk = [sum(truth(t) for t in members) for _, _, members in groups]
    _fit(fit, groups, dk, CLASSES)
    # the model is w_class * w_band: only the products are identified, so compare those
    for t in tensors:
        assert fit.weight(t.name, CLASSES) * t.options["Q3_K"][1] == pytest.approx(truth(t), rel=0.05), t.name


def test_names_map_to_classes_and_layers() -> None:
    assert tensor_class("blk.3.attn_q.weight", CLASSES) == "attn"
    assert tensor_class("token_embd.weight", CLASSES) == "embeddings"
    assert tensor_class("blk.0.attn_k.weight", CLASSES) == "other"
    assert layer_of("blk.12.ffn_down.weight") == 12 and layer_of("output.weight") is None
