"""Turn user inputs (files and folders) into records, file by file, with a report per file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medcal_gui.core.errors import Cancelled, DataError, InputError, MedcalError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.dataset.reading import parse
from medcal_gui.dataset.reading.encoding import EncodingInfo, detect_encoding, iter_lines
from medcal_gui.dataset.reading.inputs import check_input_file, read_error
from medcal_gui.dataset.reading.load_issues import LineScan, LoadIssue
from medcal_gui.dataset.records import TURN_MARKERS, Record

SUFFIXES = (".txt", ".jsonl", ".csv")
SPLITS = ("headers", "paragraphs")


@dataclass(frozen=True)
class LoadOptions:
    encoding: str = "auto"  # "auto" or a codec name forced for every file
    text_field: str = "text"  # JSONL/CSV column holding the narrative
    split: str = "headers"  # "headers" (the narrative format) or "paragraphs" (blank-line separated)
    encodings: tuple[tuple[str, str], ...] = ()  # per-file overrides: (path, codec)

    def encoding_for(self, path: Path) -> str:
        for p, enc in self.encodings:
            if Path(p) == path:
                return enc
        return self.encoding

    def with_override(self, path: Path, encoding: str) -> LoadOptions:
        rest = tuple((p, e) for p, e in self.encodings if Path(p) != path)
        return LoadOptions(self.encoding, self.text_field, self.split, rest + ((str(path), encoding),))


class _Issues:
    """`errors` and `warnings` (their messages) out of `issues`."""

    if TYPE_CHECKING:
        @property
        def issues(self) -> list[LoadIssue]: ...

    @property
    def errors(self) -> list[str]:
        return [i.message for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [i.message for i in self.issues if i.severity == "warning"]


@dataclass
class FileReport(_Issues):
    path: Path
    encoding: EncodingInfo | None = None
    records: int = 0
    issues: list[LoadIssue] = field(default_factory=list)  # errors and warnings, at their source lines

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "encoding": self.encoding.to_json() if self.encoding else None,
                "records": self.records, "errors": self.errors, "warnings": self.warnings,
                "issues": [i.to_json() for i in self.issues]}


def _folder_files(p: Path) -> list[Path]:
    try:
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
    except OSError as exc:
        raise read_error(p, exc) from None


def discover_inputs(inputs: Iterable[Path | str]) -> list[Path]:
    """Expand folders to their *.txt, *.jsonl and *.csv files (sorted); check every file given by name is
    a regular file that can be read (a FIFO, a device, a broken link each get their own message)."""
    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = _folder_files(p)
            if not found:
                raise InputError(f"{p}: the folder holds no usable files (looked for "
                                 f"{', '.join('*' + s for s in SUFFIXES)}).")
            files.extend(found)
        else:
            check_input_file(p, "a narrative file or folder")
            files.append(p)
    if not files:
        raise InputError("No input files were given.")
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def _stem_ids(files: Sequence[Path]) -> dict[Path, str]:
    """Record-id prefixes: the file stem, made unique when two inputs share one."""
    stems: dict[Path, str] = {}
    used: dict[str, int] = {}
    for f in files:
        s = f.stem
        used[s] = used.get(s, 0) + 1
        stems[f] = s if used[s] == 1 else f"{s}~{used[s]}"
    return stems


def iter_file_records(path: Path, info: EncodingInfo, options: LoadOptions, stem: str,
                      scan: LineScan | None = None) -> Iterator[Record]:
    """The file's records, in order; `scan` (when given) collects decoding problems at their lines."""
    lines = iter_lines(path, info) if scan is None else scan.wrap(iter_lines(path, info))
    src = str(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from parse.parse_jsonl(lines, src, stem, options.text_field)
    elif suffix == ".csv":
        yield from parse.parse_csv(lines, src, stem, options.text_field)
    elif options.split == "paragraphs":
        yield from parse.parse_paragraphs(lines, src, stem)
    elif options.split == "headers":
        yield from parse.parse_headers(lines, src, stem)
    else:
        raise InputError(f"Unknown split {options.split!r}: use one of {', '.join(SPLITS)}.")


def _token_problem(rec: Record, token: str) -> str:
    if token in TURN_MARKERS:
        return (f"record {rec.id} contains the turn marker {token} in its narrative, which would break the "
                "chat turn structure. Remove or rewrite it.")
    return (f"record {rec.id} contains {token} in its narrative: the model reads that text as a special "
            "(control) token, so the importance matrix would see a control token instead of text. Remove "
            "or rewrite it.")


def record_errors(rec: Record) -> list[str]:
    """Problems that make a record unusable for the chat format."""
    errs = []
    hit = rec.marker_position()
    if hit:
        token, line = hit
        errs.append(f"{rec.source}, line {line}: {_token_problem(rec, token)}")
    if not rec.text:
        errs.append(f"{rec.source}, line {rec.line}: record {rec.id} has an empty narrative.")
    return errs


def check_record(rec: Record) -> Record:
    """Raise on the first unusable record (the streaming path: nothing is written past it)."""
    hit = rec.marker_position()
    if hit:
        token, line = hit
        raise DataError(_token_problem(rec, token), rec.source, line)
    if not rec.text:
        raise DataError(f"record {rec.id} has an empty narrative.", rec.source, rec.line)
    return rec


@dataclass
class Dataset(_Issues):
    """Records loaded in memory (the GUI's and the tests' view), with one report per file."""

    files: list[FileReport]
    records: list[Record]
    options: LoadOptions = field(default_factory=LoadOptions)

    @property
    def issues(self) -> list[LoadIssue]:
        """Every file's errors and warnings (with their hints), then the warnings about the set as a whole."""
        infos = [f.encoding for f in self.files if f.encoding]
        paths = [f.path for f in self.files if f.encoding]
        return [i for f in self.files for i in f.issues] + [LoadIssue("warning", w) for w in
                                                            encoding_warnings(infos, paths)]

    def populations(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.population] = counts.get(r.population, 0) + 1
        return counts


def encoding_warnings(infos: Sequence[EncodingInfo], paths: Sequence[Path]) -> list[str]:
    warnings = []
    names = {i.encoding.replace("-sig", "") for i in infos}
    if len(names) > 1:
        detail = ", ".join(f"{p.name}: {i.label}" for p, i in zip(paths, infos, strict=True))
        warnings.append(f"The input files use different encodings ({detail}); each was decoded with its "
                        "own, and every output is UTF-8. Check that each file's encoding is right.")
    for p, i in zip(paths, infos, strict=True):
        if i.method == "fallback":
            warnings.append(f"{p}: {i.note}.")
    return warnings


def load_file(path: Path, options: LoadOptions, stem: str | None = None,
              cancel: CancelToken | None = None) -> tuple[FileReport, list[Record]]:
    report = FileReport(path)
    records: list[Record] = []
    scan: LineScan | None = None
    try:
        report.encoding = detect_encoding(path, options.encoding_for(path))
        scan = LineScan(str(path), report.encoding.encoding)
        for rec in iter_file_records(path, report.encoding, options, stem or path.stem, scan):
            records.append(rec)
            report.issues.extend(LoadIssue("error", e, rec.source, None, None, rec.id)
                                 for e in record_errors(rec))
            if cancel is not None and len(records) % 1000 == 0:
                cancel.check()
    except Cancelled:
        raise
    except MedcalError as exc:
        report.issues.append(LoadIssue.from_error(exc, str(path)))
        records = []
    if scan is not None:
        report.issues.extend(scan.issues())
    report.records = len(records)
    return report, records


def load_dataset(inputs: Iterable[Path | str], options: LoadOptions | None = None,
                 progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> Dataset:
    """Load everything in memory; per-file problems land in the file reports instead of raising."""
    options = options or LoadOptions()
    files = discover_inputs(inputs)
    stems = _stem_ids(files)
    reports, records = [], []
    for i, f in enumerate(files):
        if cancel is not None:
            cancel.check()
        progress(Progress("load", i, len(files), message=f"reading {f.name}", unit="files"))
        rep, recs = load_file(f, options, stems[f], cancel)
        reports.append(rep)
        records.extend(recs)
    progress(Progress("load", len(files), len(files), message=f"{len(records)} records", unit="files"))
    return Dataset(reports, records, options)


def open_sources(inputs: Iterable[Path | str], options: LoadOptions) -> list[tuple[Path, EncodingInfo, str]]:
    """The streaming path's first step: detect every file's encoding, raising on the first unusable one."""
    files = discover_inputs(inputs)
    stems = _stem_ids(files)
    return [(f, detect_encoding(f, options.encoding_for(f)), stems[f]) for f in files]


def iter_records(sources: Sequence[tuple[Path, EncodingInfo, str]], options: LoadOptions,
                 warnings: list[LoadIssue] | None = None) -> Iterator[Record]:
    """Stream every record of every source, raising DataError on the first unusable one; each file's
    decoding warnings are appended to `warnings` once the file is read."""
    for path, info, stem in sources:
        count = 0
        scan = LineScan(str(path), info.encoding, strict=True)
        for rec in iter_file_records(path, info, options, stem, scan):
            count += 1
            yield check_record(rec)
        if warnings is not None:
            warnings.extend(scan.issues())
        if count == 0:
            raise DataError("the file holds no records.", str(path))
