from __future__ import annotations

import llama_cpp
import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.quantize.quant_types import (
    all_quant_types,
    get_quant_type,
    imatrix_advice,
    quant_type_for_ftype,
)

# llama-quantize's QUANT_OPTIONS in llama.cpp as vendored by llama-cpp-python 0.3.36 (aliases and COPY left out).
EXPECTED_NAMES = [
    "Q1_0", "Q2_0", "Q4_0", "Q4_1", "MXFP4_MOE", "Q5_0", "Q5_1", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",
    "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "Q2_K", "Q2_K_S", "IQ3_XXS", "IQ3_S", "IQ3_M", "IQ3_XS", "Q3_K_S",
    "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16",
    "BF16", "F32",
]


def _llama_constant(name: str) -> int:
    const = "LLAMA_FTYPE_ALL_F32" if name == "F32" else f"LLAMA_FTYPE_MOSTLY_{name}"
    return int(getattr(llama_cpp, const))


def test_table_lists_every_llama_quantize_type_in_order() -> None:
    assert [qt.name for qt in all_quant_types()] == EXPECTED_NAMES


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_ftype_matches_llama_cpp_constant(name: str) -> None:
    assert get_quant_type(name).ftype == _llama_constant(name)


def test_ftypes_are_unique() -> None:
    ftypes = [qt.ftype for qt in all_quant_types()]
    assert len(ftypes) == len(set(ftypes))


def test_imatrix_classes_follow_llama_quant_cpp() -> None:
    requires = {qt.name for qt in all_quant_types() if qt.imatrix == "requires"}
    ignores = {qt.name for qt in all_quant_types() if qt.imatrix == "ignores"}
    assert requires == {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "Q2_K_S"}
    assert ignores == {"Q8_0", "F16", "BF16", "F32", "TQ1_0", "TQ2_0", "Q1_0", "Q2_0", "MXFP4_MOE"}
    assert get_quant_type("Q4_K_M").imatrix == "benefits"


def test_bits_per_weight_are_ordered_sensibly() -> None:
    bpw = {qt.name: qt.bpw for qt in all_quant_types()}
    assert bpw["IQ1_S"] < bpw["IQ2_XXS"] < bpw["Q3_K_S"] < bpw["Q4_K_M"] < bpw["Q6_K"] < bpw["Q8_0"]
    assert bpw["F16"] == 16.0 and bpw["F32"] == 32.0
    assert 4.8 < bpw["Q4_K_M"] < 5.0
    assert all(qt.description and qt.description.endswith(".") for qt in all_quant_types())


def test_lookup_is_case_insensitive_and_accepts_aliases() -> None:
    assert get_quant_type("q4_k_m").name == "Q4_K_M"
    assert get_quant_type(" iq3_xxs ").ftype == 23
    assert get_quant_type("Q4_K").name == "Q4_K_M"
    assert get_quant_type("q5_k").name == "Q5_K_M"


def test_unknown_type_is_refused_with_the_valid_names() -> None:
    with pytest.raises(InputError) as exc:
        get_quant_type("Q7_X")
    assert "Q7_X" in exc.value.message
    assert "Q4_K_M" in exc.value.message and "IQ2_XXS" in exc.value.message


def test_ftype_lookup() -> None:
    f16 = quant_type_for_ftype(1)
    assert f16 is not None and f16.name == "F16"
    q4 = quant_type_for_ftype(15)
    assert q4 is not None and q4.name == "Q4_K_M"
    assert quant_type_for_ftype(4) is None  # the removed Q4_1_SOME_F16


def test_imatrix_advice() -> None:
    assert imatrix_advice(get_quant_type("Q8_0"), True) == (
        "Q8_0 ignores the importance matrix: the result is the same with or without it.")
    assert imatrix_advice(get_quant_type("Q8_0"), False) is None
    advice = imatrix_advice(get_quant_type("IQ2_XXS"), False)
    assert advice is not None and "requires an importance matrix" in advice
    assert imatrix_advice(get_quant_type("IQ2_XXS"), True) is None
    low = imatrix_advice(get_quant_type("Q3_K_S"), False)
    assert low is not None and "improves" in low
    assert imatrix_advice(get_quant_type("Q4_K_M"), True) is None


def test_the_imatrix_thresholds_come_from_the_data_file() -> None:
    """`[rules]` in quant_types.toml: every refused type exists and requires an imatrix; the advice threshold
    separates the low-bit k-quants (advised) from the 5-bit ones (not)."""
    from medcal_gui.quantize.quant_types import get_quant_type, imatrix_advice, quant_rules

    rules = quant_rules()
    assert rules.refuse_without_imatrix and all(get_quant_type(n).imatrix == "requires"
                                                for n in rules.refuse_without_imatrix)
    assert "IQ3_XXS" not in rules.refuse_without_imatrix  # the dry run decides for it
    assert rules.suggest_imatrix_below_bpw == 4.5
    assert imatrix_advice(get_quant_type("Q4_K_M"), False) is None  # 4.89 bpw: above the threshold
    assert imatrix_advice(get_quant_type("Q3_K_M"), False) is not None  # 3.74 bpw: below it
    low = [qt for qt in (get_quant_type(n) for n in ("Q3_K_M", "Q4_K_S", "Q5_K_M")) if qt.imatrix == "benefits"]
    for qt in low:
        advised = imatrix_advice(qt, False) is not None
        assert advised == (qt.bpw < rules.suggest_imatrix_below_bpw), qt.name


def test_quant_types_toml_is_parsed_once_for_types_rules_and_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    from medcal_gui.quantize import quant_advice, quant_types

    caches = (quant_types.quant_types_doc, quant_types._load, quant_types.quant_rules, quant_advice._caveats)
    parsed: list[object] = []
    real_load = tomllib.load
    monkeypatch.setattr(tomllib, "load", lambda fh: parsed.append(fh) or real_load(fh))
    for c in caches:
        c.cache_clear()
    try:
        quant_types.all_quant_types()
        quant_types.quant_rules()
        quant_advice.default_ladder_types()
        quant_advice.recommended_type()
        quant_advice.caveat("Q4_K_M")
        assert len(parsed) == 1
    finally:
        for c in caches:
            c.cache_clear()
