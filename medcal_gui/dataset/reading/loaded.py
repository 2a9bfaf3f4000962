"""What the window loads: the dataset and every issue about it (file errors, decoding and encoding notes,
record errors, PHI warnings), each tied to its source file and, when it is about one, its record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.dataset.reading.loader import (
    Dataset,
    FileReport,
    LoadOptions,
    encoding_warnings,
    load_dataset,
    record_errors,
)
from medcal_gui.dataset.validation import phi


@dataclass(frozen=True)
class Issue:
    """One error or warning about the inputs: where (file, line), and the record when it is about one.

    The fields are those of the loader's own issues (severity, message, path, line, hint, record_id), so
    the loader's issues are shown as they are. `hint` names a setting that would help; the front end that
    shows the message phrases it (the core's message names no CLI flag and no GUI control).
    """

    severity: str  # "error" | "warning"
    message: str
    path: str | None = None  # the input file it is about (None: about the inputs as a whole)
    line: int | None = None
    hint: Any = None  # an errors.OptionHint-like object: .option, .value, .choices
    record_id: str | None = None


@dataclass
class LoadedInputs:
    """A load job's result: the dataset and its issues (record errors, PHI warnings, encoding notes)."""

    inputs: list[Path]
    dataset: Dataset
    issues: list[Issue] = field(default_factory=list)

    def file_issues(self, path: Path | str) -> list[Issue]:
        """The issues about one input file (its own and its records'), in load order."""
        return [i for i in self.issues if i.path == str(path)]

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity != "error")


def _as_issue(item: Any, path: str, severity: str) -> Issue:
    """A report's entry as an Issue: a plain message, or an issue object with its own fields."""
    if isinstance(item, str):
        return Issue(severity, item, path)
    return Issue(getattr(item, "severity", severity), item.message, getattr(item, "path", None) or path,
                 getattr(item, "line", None), getattr(item, "hint", None), getattr(item, "record_id", None))


def file_report_issues(rep: FileReport, skip: set[str]) -> list[Issue]:
    """One file's own issues: its errors and the decoding problems the loader found while reading it (but
    those in `skip`, shown on their records), and its encoding fallback note."""
    src = str(rep.path)
    own = getattr(rep, "issues", None)  # the loader's issues, with line and hint, where it records them
    entries: list[Any] = list(own) if own is not None else list(rep.errors)
    out = [_as_issue(e, src, "error") for e in entries if getattr(e, "message", e) not in skip]
    if rep.encoding is not None:
        out += [Issue("warning", w, src) for w in encoding_warnings([rep.encoding], [rep.path])]
    unique: dict[tuple[str, str], Issue] = {}
    for i in out:
        unique.setdefault((i.severity, i.message), i)
    return list(unique.values())


def load_inputs(inputs: Sequence[Path], options: LoadOptions, progress: ProgressCallback = no_progress,
                cancel: CancelToken | None = None) -> LoadedInputs:
    """Load `inputs` with the core's loader, then find each record's errors and PHI warnings."""
    ds = load_dataset(inputs, options, progress, cancel)
    issues: list[Issue] = []
    record_msgs: set[str] = set()
    n = len(ds.records)
    for i, rec in enumerate(ds.records, start=1):
        hit = rec.marker_position()  # a record's error is its marker's line, or (empty) the record's
        for msg in record_errors(rec):
            record_msgs.add(msg)
            issues.append(Issue("error", msg, rec.source, hit[1] if hit else rec.line, record_id=rec.id))
        for h in phi.scan(rec.text, rec.id, rec.line):
            issues.append(Issue("warning", f"Possible PHI, line {h.line}: {h.label} ({h.text!r}).", rec.source,
                                h.line, record_id=rec.id))
        if i % 200 == 0:
            if cancel is not None:
                cancel.check()
            progress(Progress("scan", i, n, "checking records", unit="records"))
    file_issues: list[Issue] = []
    for rep in ds.files:
        file_issues += file_report_issues(rep, record_msgs)
    per_file = {i.message for i in file_issues}
    file_issues += [Issue("warning", w) for w in ds.warnings if w not in per_file]
    progress(Progress("scan", n, n, f"{n} records", unit="records"))
    return LoadedInputs(list(inputs), ds, file_issues + issues)
