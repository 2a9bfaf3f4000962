"""The statistics against values computed independently (R's binom.test / prop.test, textbook examples)."""

from __future__ import annotations

import math

import pytest

from medcal_gui.behaviour.stats import Proportion, clopper_pearson_ci, mcnemar_exact, wilson_ci


def test_wilson_interval_matches_known_values() -> None:
    # 81 of 263 (Wilson 1927 / Newcombe 1998's example 1): 0.2553 - 0.3662
    lo, hi = wilson_ci(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-5)
    assert hi == pytest.approx(0.3662, abs=5e-5)
    # 0 of 10: Newcombe's 0 - 0.2775
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.2775, abs=5e-5)


def test_clopper_pearson_matches_binom_test() -> None:
    # R: binom.test(7, 20)$conf.int -> 0.1539092 0.5921885
    lo, hi = clopper_pearson_ci(7, 20)
    assert lo == pytest.approx(0.1539092, abs=1e-6)
    assert hi == pytest.approx(0.5921885, abs=1e-6)
    # the boundary cases have closed forms: k = n -> (alpha/2)^(1/n)
    lo, hi = clopper_pearson_ci(10, 10)
    assert hi == 1.0
    assert lo == pytest.approx(0.025 ** (1 / 10), abs=1e-9)


def test_exact_mcnemar_p_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    # b=1, c=9: 2 * (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    # R: binom.test(2, 14)$p.value -> 0.01293945
    assert mcnemar_exact(2, 12) == pytest.approx(0.01293945, abs=1e-8)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)


def test_proportion_record() -> None:
    p = Proportion.of(30, 40)
    assert p.value == 0.75
    assert p.wilson_low < 0.75 < p.wilson_high
    assert p.exact_low < p.wilson_low  # the exact interval is the wider one here
    assert "75.0 %" in p.text()
    assert math.isclose(Proportion.of(0, 0).value, 0.0)
