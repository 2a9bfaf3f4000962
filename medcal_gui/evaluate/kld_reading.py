"""How to read a mean KL divergence: the bands of `resources/kld_reading.toml`, loaded once, for every place
that shows one (the Verify pane, `medcal ladder`'s recommendation, report and chart, the ladder pane)."""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import resources_dir

KLD_FILE = "kld_reading.toml"


@dataclass(frozen=True)
class KldBand:
    below: float  # the last band's is inf
    label: str  # "near-lossless"
    reading: str  # what a KLD in the band usually means, in plain words
    kind: str  # "ok" | "warn" | "bad" (a colour in the GUI)


@dataclass(frozen=True)
class KldGuide:
    bands: tuple[KldBand, ...]
    default_max_kld: float  # the ladder's recommendation without --max-kld

    @property
    def near_lossless(self) -> float:
        return self.bands[0].below

    @property
    def noticeable(self) -> float:
        return self.bands[-2].below if len(self.bands) > 1 else self.bands[0].below

    def band(self, kld_mean: float) -> KldBand:
        return next(b for b in self.bands if kld_mean < b.below)

    @property
    def summary(self) -> str:
        return (f"Lower is better; below {self.near_lossless:g} is usually indistinguishable, above "
                f"{self.noticeable:g} noticeable.")

    def reading(self, kld_mean: float) -> str:
        """A plain-words reading of a mean KLD, with the thresholds it was read against."""
        b = self.band(kld_mean)
        return f"KLD mean {kld_mean:.4g} ({b.label}): {b.reading}. {self.summary}"


@functools.cache
def kld_guide() -> KldGuide:
    path = resources_dir() / KLD_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        bands = tuple(KldBand(float(b["below"]), str(b["label"]), str(b["reading"]), str(b.get("kind", "")))
                      for b in data["band"])
        default_max_kld = float(data.get("default_max_kld", bands[0].below if bands else 0.01))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable KLD reading file ({exc}).") from None
    if not bands or list(bands) != sorted(bands, key=lambda b: b.below) or not math.isinf(bands[-1].below):
        raise InputError(f"{path}: the bands must rise and the last one must be `below = inf`.")
    return KldGuide(bands, default_max_kld)
