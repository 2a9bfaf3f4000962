"""How a mean KLD is read: one data file, one loader, the same words in the Verify pane and the ladder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir
from medcal_gui.evaluate import kld_reading
from medcal_gui.evaluate.kld_reading import kld_guide
from medcal_gui.workflows.ladder.ladder_report import recommend
from medcal_gui.workflows.ladder.results import Constraints, Rung


def test_kld_reading_uses_the_bands_in_the_data_file() -> None:
    g = kld_guide()
    assert [b.kind for b in g.bands] == ["ok", "warn", "bad"]
    assert (g.near_lossless, g.noticeable, g.default_max_kld) == (0.01, 0.1, 0.01)
    low, high = g.near_lossless, g.noticeable
    assert g.band(low / 2).kind == "ok" and g.band(low).kind == "warn" and g.band(high * 3).kind == "bad"
    text = g.reading(0.004)
    assert "(near-lossless): usually indistinguishable from the base" in text
    assert "Lower is better; below 0.01 is usually indistinguishable, above 0.1 noticeable" in text


def test_one_file_holds_the_kld_bands() -> None:
    # two files said it twice in different words: "small loss: close to the base" in the ladder, "small
    # differences; check the answers side by side" in the Verify pane, for the same KLD
    assert not (resources_dir() / "kld_guidance.toml").exists()
    assert [p.name for p in resources_dir().glob("kld*.toml")] == ["kld_reading.toml"]


def _rung(kld: float) -> Rung:
    from dataclasses import fields

    values = {f.name: 0 for f in fields(Rung)}
    values.update(type="Q8_0", bytes=100_000_000, bpw=8.5, kld_mean=kld, pareto=True, speedup_tg=1.0)
    return Rung(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kld", [0.004, 0.05, 0.3])
def test_the_ladder_and_the_verify_pane_read_a_kld_in_the_same_words(kld: float) -> None:
    band = kld_guide().band(kld)
    rec = recommend([_rung(kld)], Constraints(max_kld=1.0))
    assert f"({band.label}: {band.reading})" in rec["text"]
    assert f"({band.label}): {band.reading}" in kld_guide().reading(kld)


def test_a_broken_kld_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "res"
    fake.mkdir()
    (fake / "variants").symlink_to(resources_dir() / "variants")
    (fake / "kld_reading.toml").write_text("[[band]]\nbelow = 0.1\nlabel = 'a'\nreading = 'x'\n", encoding="utf-8")
    monkeypatch.setenv("MEDCAL_RESOURCES", str(fake))
    kld_reading.kld_guide.cache_clear()
    try:
        with pytest.raises(InputError, match="last one must be `below = inf`"):
            kld_reading.kld_guide()
    finally:
        kld_reading.kld_guide.cache_clear()
