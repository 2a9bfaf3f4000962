"""Per-tensor type overrides (--tensor-type, --tensor-type-file) and --prune-layers, on the tiny real model."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.llama import ggml_ctypes as gc
from medcal_gui.quantize.quantize import quantize_model
from medcal_gui.quantize.tensor_types import (
    TensorTypeRule,
    match_tensors,
    parse_prune_layers,
    parse_tensor_type,
    read_tensor_type_file,
    tensor_type_file_text,
    write_tensor_type_file,
)


def _types(path: Path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}


@pytest.fixture(scope="module")
def baseline(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("base") / "tiny-Q4_K_M.gguf"
    quantize_model(tiny_model, out, "Q4_K_M")
    return _types(out)


def test_overrides_land_on_exactly_the_tensors_they_name(tiny_model: Path, baseline: dict[str, str],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "ovr.gguf"
    rules = [parse_tensor_type("attn_v=q8_0"), parse_tensor_type(r"blk\.0\.ffn_down=Q5_K")]
    res = quantize_model(tiny_model, out, "Q4_K_M", tensor_types=rules)
    got = _types(out)
    changed = {n: t for n, t in got.items() if baseline[n] != t}
    assert baseline["blk.0.attn_v.weight"] != "Q8_0" and baseline["blk.0.ffn_down.weight"] != "Q5_K"
    # llama.cpp's quirk, kept: an overridden tensor does not advance the mixture's per-class layer counter,
    # so blk.1.ffn_down is treated as the first ffn_down (Q4_K) instead of the last (Q6_K in Q4_K_M)
    assert baseline["blk.1.ffn_down.weight"] == "Q6_K"
    assert changed == {"blk.0.attn_v.weight": "Q8_0", "blk.1.attn_v.weight": "Q8_0",
                       "blk.0.ffn_down.weight": "Q5_K", "blk.1.ffn_down.weight": "Q4_K"}
    assert res.warnings == []
    assert [(m["pattern"], m["type"], m["names"]) for m in res.tensor_types] == [
        ("attn_v", "q8_0", ["blk.0.attn_v.weight", "blk.1.attn_v.weight"]),
        (r"blk\.0\.ffn_down", "q5_K", ["blk.0.ffn_down.weight"])]
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text(encoding="utf-8"))
    assert [(m["pattern"], m["type"], m["tensors"]) for m in manifest["tensor_types"]] == [
        ("attn_v", "q8_0", 2), (r"blk\.0\.ffn_down", "q5_K", 1)]
    assert manifest["tensor_types"][0]["input_bytes"] == 2 * 256 * 128 * 4
    assert manifest["prune_layers"] == []


def test_first_matching_rule_wins_and_match_tensors_agrees(tiny_model: Path, tmp_path: Path) -> None:
    rules = [parse_tensor_type(r"blk\.0\.ffn_down=q8_0"), parse_tensor_type("ffn_down=q5_k")]
    out = tmp_path / "first.gguf"
    res = quantize_model(tiny_model, out, "Q4_K_M", tensor_types=rules)
    got = _types(out)
    assert got["blk.0.ffn_down.weight"] == "Q8_0" and got["blk.1.ffn_down.weight"] == "Q5_K"
    m = match_tensors(tiny_model, rules)
    assert [x.tensors for x in m] == [["blk.0.ffn_down.weight"], ["blk.1.ffn_down.weight"]]
    assert m[1].shadowed == 1
    # the bytes match_tensors predicts are the bytes llama.cpp wrote for those tensors
    r = gguf.GGUFReader(str(out))
    written = {t.name: int(t.n_bytes) for t in r.tensors}
    assert m[0].output_bytes == written["blk.0.ffn_down.weight"]
    assert m[1].output_bytes == written["blk.1.ffn_down.weight"]
    assert res.warnings == []


def test_a_rule_that_sets_nothing_gets_a_warning(tiny_model: Path, tmp_path: Path) -> None:
    rules = [parse_tensor_type("ffn_=q8_0"), parse_tensor_type("ffn_up=q6_k"), parse_tensor_type("nosuch=q8_0"),
             parse_tensor_type("attn_norm=q8_0")]  # norms are never quantized
    res = quantize_model(tiny_model, tmp_path / "w.gguf", "Q8_0", tensor_types=rules, dry_run=True)
    assert len(res.warnings) == 3
    assert "ffn_up=q6_K sets no tensor" in res.warnings[0] and "earlier rule" in res.warnings[0]
    assert "nosuch=q8_0 matches no quantized tensor" in res.warnings[1]
    assert "attn_norm=q8_0 matches no quantized tensor" in res.warnings[2]


def test_dry_run_estimate_reflects_the_overrides(tiny_model: Path, tmp_path: Path) -> None:
    plain = quantize_model(tiny_model, tmp_path / "a.gguf", "Q4_K_M", dry_run=True)
    more = quantize_model(tiny_model, tmp_path / "a.gguf", "Q4_K_M", dry_run=True,
                          tensor_types=[parse_tensor_type(".=q8_0")])
    assert more.output_bytes > plain.output_bytes * 1.3


def test_rules_on_a_float_type_warn_that_they_change_nothing(tiny_model: Path, tmp_path: Path) -> None:
    res = quantize_model(tiny_model, tmp_path / "f.gguf", "F16", dry_run=True,
                         tensor_types=[parse_tensor_type("attn_v=q8_0")])
    assert any("float one, so the rules change nothing" in w for w in res.warnings)
    assert res.tensor_types[0]["tensors"] == 0


def test_a_rule_whose_type_needs_an_imatrix_is_refused_without_one(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="only with an importance matrix"):
        quantize_model(tiny_model, tmp_path / "i.gguf", "Q8_0", tensor_types=[parse_tensor_type("attn_q=iq2_xxs")])
    assert not (tmp_path / "i.gguf").exists()


def test_prune_layers_drops_the_layer_and_renumbers_the_rest(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned.gguf"
    res = quantize_model(tiny_model, out, "Q8_0", prune_layers=[0],
                         tensor_types=[parse_tensor_type(r"blk\.0\.attn_v=q6_k")])
    r = gguf.GGUFReader(str(out))
    src = gguf.GGUFReader(str(tiny_model))
    assert int(r.fields["gemma3.block_count"].parts[-1][0]) == 1
    names = [t.name for t in r.tensors]
    assert not any(n.startswith("blk.1.") for n in names)
    assert sorted(n for n in names if n.startswith("blk.")) == sorted(
        t.name.replace("blk.1.", "blk.0.") for t in src.tensors if t.name.startswith("blk.1."))
    # the new layer 0 is the old layer 1 (its F32 norm is copied as is), and the rule saw the new names
    new_norm = next(t for t in r.tensors if t.name == "blk.0.attn_norm.weight")
    old_norm = next(t for t in src.tensors if t.name == "blk.1.attn_norm.weight")
    assert np.array_equal(np.asarray(new_norm.data), np.asarray(old_norm.data))
    assert _types(out)["blk.0.attn_v.weight"] == "Q6_K"
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text(encoding="utf-8"))
    assert manifest["prune_layers"] == [0] and res.prune_layers == [0]
    with pytest.raises(InputError, match="has 2 layers"):
        quantize_model(tiny_model, tmp_path / "p2.gguf", "Q8_0", prune_layers=[5])


@pytest.mark.parametrize("text,msg", [
    ("attn_v", "no '='"), ("=q8_0", "no tensor name pattern"), ("attn_v=", "no type after"),
    ("attn_v=q9_9", "'q9_9' is not a ggml tensor type"), ("attn_v=deprecated", "not a ggml tensor type"),
    ("attn_v[=q8_0", "not a valid regular expression"), ("(?<!x)blk=q8_0", "ECMAScript"),
    ("(?>blk)=q8_0", "ECMAScript"), (r"blk\.\S+=q8_0", "lowercases patterns"),
])
def test_parse_errors_name_the_option(text: str, msg: str) -> None:
    with pytest.raises(InputError, match="^--tensor-type: .*" + msg.replace("(", r"\(").replace("[", r"\[")):
        parse_tensor_type(text)


def test_parse_lowercases_the_pattern_and_spells_the_type_as_ggml() -> None:
    assert parse_tensor_type(r"BLK\.0\.ATTN_V=Q4_k") == TensorTypeRule(r"blk\.0\.attn_v", "q4_K")
    assert parse_tensor_type("a=b=c".replace("b=c", "q8_0")) == TensorTypeRule("a", "q8_0")
    with pytest.raises(InputError, match="'q8_0=x' is not a ggml"):
        parse_tensor_type("a=q8_0=x")
    assert parse_tensor_type(r"a\\S=q8_0").pattern == r"a\\s"  # an escaped backslash, then a letter


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "types.txt"
    f.write_text("attn_v=q8_0\n\nffn_down=q6_k  ffn_up=q5_k\nattn_q=q99\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{f}, line 4: 'q99' is not a ggml tensor type"):
        read_tensor_type_file(f)
    f.write_text("attn_v=q8_0\nffn_down = q6_k\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{f}, line 2: .*without spaces"):
        read_tensor_type_file(f)
    f.write_text("# comment\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{f}, line 1: '# comment' is not PATTERN=TYPE.*no comments"):
        read_tensor_type_file(f)
    with pytest.raises(InputError, match="does not exist"):
        read_tensor_type_file(tmp_path / "none.txt")


def test_file_round_trips_and_reads_whitespace_as_llama_quantize(tmp_path: Path) -> None:
    rules = [parse_tensor_type("attn_v=q8_0"), parse_tensor_type(r"blk\.[0-9]\.ffn_down=q6_K"),
             parse_tensor_type("token_embd=q4_k")]
    f = tmp_path / "recipe.txt"
    write_tensor_type_file(f, rules)
    assert f.read_bytes() == b"attn_v=q8_0\nblk\\.[0-9]\\.ffn_down=q6_K\ntoken_embd=q4_K\n"
    assert read_tensor_type_file(f) == rules
    f.write_bytes(b"  attn_v=Q8_0\r\n\tblk\\.[0-9]\\.ffn_down=q6_k token_embd=Q4_K\x0b\n")
    assert read_tensor_type_file(f) == rules
    with pytest.raises(InputError, match="no spaces"):
        tensor_type_file_text([TensorTypeRule("attn v", "q8_0")])


def test_prune_layers_parse_as_llama_quantize() -> None:
    assert parse_prune_layers("3,1,1, 2") == [1, 2, 3]
    # std::stoi would read the leading digits of "4abc" or "1e3": medcal refuses them (tests/hostile)
    for bad in ("1,,2", "-1", "x", "1,", "4abc", "1e3", "1.5"):
        with pytest.raises(InputError, match="is not a layer number"):
            parse_prune_layers(bad)


def test_quantize_params_fill_the_override_and_prune_arrays() -> None:
    qa = gc.quantize_params(ftype=7, nthread=1, allow_requantize=False, pure=False, dry_run=True,
                            output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[],
                            tt_overrides=[("attn_v", 8), (r"blk\.0\.", 14)], prune_layers=[3, 5])
    tt = qa.params.tt_overrides
    assert (tt[0].pattern, tt[0].type, tt[1].pattern, tt[1].type) == (b"attn_v", 8, rb"blk\.0\.", 14)
    assert tt[2].pattern is None
    assert [qa.params.prune_layers[i] for i in range(3)] == [3, 5, -1]
    empty = gc.quantize_params(ftype=7, nthread=1, allow_requantize=False, pure=False, dry_run=True,
                               output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
    assert not empty.params.tt_overrides and not empty.params.prune_layers


@pytest.mark.slow
def test_an_override_the_rows_cannot_take_falls_back_as_predicted(demo_model: Path, tmp_path: Path) -> None:
    """Gemma 3 270M's attention rows hold 640 values: q4_K (256-value blocks) falls back to q5_0 there."""
    rules = [parse_tensor_type("attn_q=q4_k"), parse_tensor_type("ffn_down=q4_k")]
    m = match_tensors(demo_model, rules)
    assert (len(m[0].tensors), m[0].fallback) == (18, 18) and (len(m[1].tensors), m[1].fallback) == (18, 0)
    out = tmp_path / "demo.gguf"
    res = quantize_model(demo_model, out, "Q8_0", tensor_types=rules)
    r = gguf.GGUFReader(str(out))
    got = {t.name: (t.tensor_type.name, int(t.n_bytes)) for t in r.tensors}
    assert {got[n][0] for n in m[0].tensors} == {"Q5_0"} and {got[n][0] for n in m[1].tensors} == {"Q4_K"}
    assert [x.output_bytes for x in m] == [sum(got[n][1] for n in x.tensors) for x in m]
    assert any("18 of the 18 tensors the rule attn_q=q4_K sets cannot take q4_K" in w for w in res.warnings)
