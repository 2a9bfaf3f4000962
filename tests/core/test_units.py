"""Sizes and finite numbers: the one reader every command and pane uses."""

from __future__ import annotations

import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.core.units import finite_float, format_bytes, parse_size


@pytest.mark.parametrize(("text", "value"), [
    ("2.5GB", 2_500_000_000), ("300 MB", 300_000_000), ("300M", 300_000_000), ("2G", 2_000_000_000),
    ("1.5gb", 1_500_000_000), ("123", 123), ("1234b", 1234), ("1e3", 1000),
    ("1GiB", 1 << 30), ("2GiB", 2 << 30), ("512MiB", 512 << 20), ("4KiB", 4096),
])
def test_parse_size_reads_decimal_and_binary_units(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_gib_is_binary_wherever_a_size_is_read() -> None:
    # the two readers disagreed: the budget read "2GiB" as 2.0e9, the ladder as 2^31
    from medcal_gui.budget import limits

    assert limits.parse_size is parse_size
    assert parse_size("2GiB") == 2_147_483_648 != parse_size("2GB")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e400", "Infinity", "-5M", "0", "lots", "", "2 XB",
                                 "1e16"])
def test_parse_size_refuses_what_is_not_a_usable_size_in_one_line(bad: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_size(bad, "--max-size")
    assert "--max-size" in exc.value.message and "\n" not in exc.value.message
    assert "2.5GB" in exc.value.message  # says what to write instead


def test_parse_size_zero_only_where_allowed() -> None:
    assert parse_size("0", allow_zero=True) == 0


@pytest.mark.parametrize("bad", ["nan", "inf", "1e400", "-inf", "x"])
def test_finite_float_refuses_nan_inf_and_words(bad: str) -> None:
    with pytest.raises(InputError, match="MEDCAL_EVAL_CACHE_MB"):
        finite_float(bad, "MEDCAL_EVAL_CACHE_MB", low=0)


def test_finite_float_bounds() -> None:
    assert finite_float(" 4.5 ", "--target-bpw", low=1, high=32) == 4.5
    with pytest.raises(InputError, match="between 1 and 32"):
        finite_float("0", "--target-bpw", low=1, high=32)


@pytest.mark.parametrize(("n", "exact", "rough"), [
    (0, "0 kB", "0 MB"), (1000, "1 kB", "0 MB"), (70_400, "70 kB", "0 MB"), (999_499, "999 kB", "1 MB"),
    (999_999, "1.0 MB", "1 MB"), (253_400_000, "253.4 MB", "253 MB"), (999_960_000, "1.00 GB", "1.0 GB"),
    (1_234_000_000, "1.23 GB", "1.2 GB"), (9_100_000_000, "9.10 GB", "9.1 GB"),
])
def test_format_bytes_precision_rule(n: int, exact: str, rough: str) -> None:
    assert format_bytes(n) == exact and format_bytes(n, rough=True) == rough


def test_format_bytes_reads_back_through_parse_size() -> None:
    for n in (262_144, 253_400_000, 1_234_000_000):
        assert abs(parse_size(format_bytes(n)) - n) <= 0.005 * n


def test_sizes_have_one_formatter_and_mib_one_definition() -> None:
    # The ladder printed a rung as "253.4 MB", the recipe beside it "253.40 MB", the budget "0.3 GB": seven
    # formatters, five MiB constants. A size printed by hand ("{n / 1e6:.1f} MB") or a MiB of its own is a new home.
    import re
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[2] / "medcal_gui"
    by_hand = re.compile(r"/ 1e[69][^}\n]*} ?[MG]B\b|^MiB = ", re.MULTILINE)
    offenders = [f"{f.relative_to(pkg)}: {m.group(0)}" for f in sorted(pkg.rglob("*.py")) if f.name != "units.py"
                 for m in by_hand.finditer(f.read_text(encoding="utf-8"))]
    # not a size for reading: the cache's limit echoes MEDCAL_EVAL_CACHE_MB in its own unit; a file name's tag
    assert offenders == ["cli/commands/cache.py: / 1e6:.0f} MB", "ui/views/recipe_controls.py: / 1e6:.1f}MB"]
