"""What the window loads: the dataset and every issue about it (file errors, decoding and encoding notes,
record errors, PHI warnings), each tied to its source file and, when it is about one, its record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medcal_gui.dataset import phi
from medcal_gui.dataset.loader import (
    Dataset,
    FileReport,
    LoadOptions,
    encoding_warnings,
    load_dataset,
    record_errors,
)
from medcal_gui.jobs import CancelToken, Progress, ProgressCallback, no_progress


@dataclass(frozen=True)
class Issue:
    """One error or warning about the inputs, tied to a record when it is about one."""

    severity: str  # "error" | "warning"
    message: str
    record_id: str | None = None
    source: str | None = None  # the input file it is about (None: about the inputs as a whole)


@dataclass
class LoadedInputs:
    """A load job's result: the dataset and its issues (record errors, PHI warnings, encoding notes)."""

    inputs: list[Path]
    dataset: Dataset
    issues: list[Issue] = field(default_factory=list)

    def file_issues(self, path: Path | str) -> list[Issue]:
        """The issues about one input file (its own and its records'), in load order."""
        return [i for i in self.issues if i.source == str(path)]

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity != "error")


def _file_warnings(rep: FileReport) -> list[str]:
    """Warnings about one file: its encoding fallback note, and any the loader recorded on the report."""
    own = list(getattr(rep, "warnings", None) or [])  # decoding problems, where the loader finds them
    if rep.encoding is not None:
        own += [w for w in encoding_warnings([rep.encoding], [rep.path]) if w not in own]
    return own


def load_inputs(inputs: Sequence[Path], options: LoadOptions, progress: ProgressCallback = no_progress,
                cancel: CancelToken | None = None) -> LoadedInputs:
    """Load `inputs` with the core's loader, then find each record's errors and PHI warnings."""
    ds = load_dataset(inputs, options, progress, cancel)
    issues: list[Issue] = []
    record_msgs: set[str] = set()
    n = len(ds.records)
    for i, rec in enumerate(ds.records, start=1):
        for msg in record_errors(rec):
            record_msgs.add(msg)
            issues.append(Issue("error", msg, rec.id, rec.source))
        for h in phi.scan(rec.text, rec.id, rec.line):
            issues.append(Issue("warning", f"Possible PHI, line {h.line}: {h.label} ({h.text!r}).", rec.id,
                                rec.source))
        if i % 200 == 0:
            if cancel is not None:
                cancel.check()
            progress(Progress("scan", i, n, "checking records", unit="records"))
    file_issues: list[Issue] = []
    per_file: set[str] = set()
    for rep in ds.files:
        src = str(rep.path)
        file_issues += [Issue("error", e, None, src) for e in rep.errors if e not in record_msgs]
        for w in _file_warnings(rep):
            per_file.add(w)
            file_issues.append(Issue("warning", w, None, src))
    file_issues += [Issue("warning", w) for w in ds.warnings if w not in per_file]
    progress(Progress("scan", n, n, f"{n} records", unit="records"))
    return LoadedInputs(list(inputs), ds, file_issues + issues)
