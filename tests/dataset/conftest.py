"""Helpers for the dataset tests: real files built at test time, the CLI run in-process, the seed's literal.

Fixtures rather than imports, so test modules need no package layout: `make_file`, `cli`, `narratives`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from medcal_gui.core.fsutil import TMP_PREFIX

# The seed document's record, byte for byte (trailing spaces after "documented" and "calibrated").
SEED_RECORD = (
    "<start_of_turn>user\n"
    "[QUANTIZATION CALIBRATION]\n"
    "Process the following cardiac monitoring interpretation for model quantization calibration:\n"
    "{narrative}\n"
    "<end_of_turn>\n"
    "<start_of_turn>model\n"
    "Clinical assessment complete. I have processed the cardiac monitoring data and documented \n"
    "the rhythm analysis, vital signs, and clinical recommendations. This record is calibrated \n"
    "for quantization-aware model optimization in cardiology domain.\n"
    "<end_of_turn>\n"
    "\n"
)

# Realistic narratives (each >= 80 characters, so no "very short" warning), one per population.
ADOLESCENT = ("Adolescent patient, 14 years old, Female, monitored by telemetry for 24 hours after a syncopal "
              "episode.\nSinus rhythm throughout, mean HR 82 bpm, QTc 410 ms.\nRecommendations: fluids and "
              "outpatient follow-up.")
ADULT = ("Adult patient, 58 years old, Male, in the coronary care unit with paroxysmal atrial fibrillation, "
         "ventricular rate 110-140 bpm, BP 128/76 mmHg, SpO2 96%. Recommendations: rate control.")
NEONATE = ("Neonate patient, 2 days old, Male, on a cardiorespiratory monitor for bradycardia episodes "
           "down to 78 bpm during feeds, SpO2 95-99%, no apnoea. Recommendations: observe.")
OTHER = ("Pediatric patient, 6 years old, Female, ambulatory ECG for palpitations showing sinus "
         "arrhythmia only, HR 70-130 bpm. Recommendations: reassurance and no restrictions.")
NARRATIVES = (ADOLESCENT, ADULT, NEONATE, OTHER)


def narrative_text(narratives: Sequence[str], topic: str = "cardiology", eol: str = "\n") -> str:
    """The original format: `Below is a <topic> topic:`, a blank line, the narrative, a blank line."""
    text = "".join(f"Below is a {topic} topic:\n\n{n}\n\n" for n in narratives)
    return text.replace("\n", eol)


class FileMaker:
    """Writes real files under a test's tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def bytes(self, name: str, data: bytes) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def narratives(self, name: str, narratives: Sequence[str] = NARRATIVES, encoding: str = "utf-8",
                   eol: str = "\n", bom: bytes = b"", topic: str = "cardiology") -> Path:
        return self.bytes(name, bom + narrative_text(narratives, topic, eol).encode(encoding))


class Cli:
    """Runs `medcal_gui.cli.main` in-process and returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str | os.PathLike[str]) -> tuple[int, str, str]:
        from medcal_gui.cli.main import main

        self.capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return rc, out, err


def listing(folder: Path) -> list[str]:
    """Every name under `folder` (recursively), sorted; [] when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def partials(folder: Path) -> list[Path]:
    return sorted(folder.rglob(TMP_PREFIX + "*"))


@pytest.fixture(autouse=True)
def _private_medcal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A MEDCAL_HOME per test, so a user variant saved by one test never shows up in another's outputs."""
    home = tmp_path / "medcal-home"
    monkeypatch.setenv("MEDCAL_HOME", str(home))
    return home


@pytest.fixture
def make_file(tmp_path: Path) -> FileMaker:
    return FileMaker(tmp_path / "in")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def seed_record() -> Callable[[str], str]:
    return lambda narrative: SEED_RECORD.format(narrative=narrative)


@pytest.fixture
def narratives() -> tuple[str, ...]:
    return NARRATIVES


@pytest.fixture
def h() -> SimpleNamespace:
    """The module's helpers and constants, for tests (listing, partials, narrative_text, SEED_RECORD, ...)."""
    return SimpleNamespace(listing=listing, partials=partials, narrative_text=narrative_text,
                           SEED_RECORD=SEED_RECORD, ADOLESCENT=ADOLESCENT, ADULT=ADULT, NEONATE=NEONATE,
                           OTHER=OTHER, NARRATIVES=NARRATIVES)
