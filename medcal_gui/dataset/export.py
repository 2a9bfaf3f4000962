"""Write the formatted file, or the seed's whole set, streaming record by record.

Every output is staged under a temporary name in the destination folder and renamed into place only when
all of them are complete and the primary file has passed validation; on any error or cancel the staged
files are removed, so nothing partial is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from medcal_gui import __version__
from medcal_gui.core.errors import MedcalError
from medcal_gui.core.fsutil import check_free_space, check_output_path, ensure_dir, make_temp, sha256_file
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.dataset.formatting import DEFAULT_OUTPUT, ORIGINAL_OUTPUT, format_original, format_record
from medcal_gui.dataset.reading.encoding import EncodingInfo
from medcal_gui.dataset.reading.load_issues import LoadIssue
from medcal_gui.dataset.reading.loader import LoadOptions, encoding_warnings, iter_records, open_sources
from medcal_gui.dataset.readme import render_readme
from medcal_gui.dataset.records import Record
from medcal_gui.dataset.validation.checks import finish_checks
from medcal_gui.dataset.validation.results import ValidationReport
from medcal_gui.dataset.validation.validate import narrative_digest, validate_chat_lines
from medcal_gui.dataset.variants import Variant, check_unique_outputs, load_variants

LOG_NAME = "calibration_dataset_log.json"
README_NAME = "README_CALIBRATION_DATASET.md"


class _Stage:
    """Outputs under temporary names, renamed together on commit, removed on abort."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, Path, IO[Any]]] = []

    def open(self, final: Path, encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
        ensure_dir(final.parent)
        fd, tmp = make_temp(final.parent)
        fh = os.fdopen(fd, "w", encoding=encoding, errors=errors, newline="\n")
        self.items.append((tmp, final, fh))
        return fh

    def drop(self, fh: IO[Any]) -> None:
        for item in list(self.items):
            if item[2] is fh:
                fh.close()
                Path(item[0]).unlink(missing_ok=True)
                self.items.remove(item)

    def tmp_of(self, final: Path) -> Path:
        return next(t for t, f, _ in self.items if f == final)

    def close_all(self) -> None:
        for _, _, fh in self.items:
            if not fh.closed:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()

    def commit(self) -> list[Path]:
        self.close_all()
        for tmp, final, _ in self.items:
            os.replace(tmp, final)
        return [final for _, final, _ in self.items]

    def abort(self) -> None:
        for tmp, _, fh in self.items:
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.items.clear()


@dataclass
class ExportResult:
    outputs: list[Path]
    records: int
    populations: dict[str, int]
    files: list[dict[str, Any]]
    validation: ValidationReport
    variant: str
    layout: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    issues: list[LoadIssue] = field(default_factory=list)  # the load warnings among `warnings`, with hints

    def to_json(self) -> dict[str, Any]:
        return {"outputs": [str(p) for p in self.outputs], "records": self.records,
                "populations": self.populations, "files": self.files, "variant": self.variant,
                "layout": self.layout, "warnings": self.warnings, "notes": self.notes,
                "errors": self.validation.errors, "seconds": round(self.seconds, 3),
                "issues": [i.to_json() for i in self.issues],
                "validation": {k: v for k, v in self.validation.to_json().items() if k != "per_record"}}


_Sources = list[tuple[Path, EncodingInfo, str]]


@dataclass
class _Targets:
    """Where an export writes: the primary file, the folder, the seed's variants and every output path."""

    primary: Path
    folder: Path
    variants: list[Variant]
    variant_problems: list[str]
    paths: list[Path]  # primary first; the latin-1 copy, when asked for, last


def _plan_targets(in_paths: list[Path], input_bytes: int, out: Path | None, dest_dir: Path | None,
                  all_variants: bool, latin1_copy: bool) -> _Targets:
    """Every output path, checked before any work (never over an input, a folder or a FIFO), and the room."""
    if all_variants:
        folder = Path(dest_dir or ".")
        primary = folder / DEFAULT_OUTPUT
    else:
        primary = Path(out) if out else Path(dest_dir or ".") / DEFAULT_OUTPUT
        folder = primary.parent
    variant_problems: list[str] = []
    variants = list(load_variants(problems=variant_problems).values()) if all_variants else []
    latin_path = primary.with_name(primary.stem + ".latin1" + primary.suffix)
    if all_variants:
        reserved = {primary.name: "the primary formatted file", ORIGINAL_OUTPUT: "the original-format copy",
                    LOG_NAME: "the log", README_NAME: "the README"}
        if latin1_copy:
            reserved[latin_path.name] = "the latin-1 copy"
        check_unique_outputs(variants, reserved)
    targets = [primary] + [folder / v.output_name for v in variants]
    if all_variants:
        targets += [folder / ORIGINAL_OUTPUT, folder / LOG_NAME, folder / README_NAME]
    if latin1_copy:
        targets.append(latin_path)
    for t in targets[1:]:
        if t.parent != folder:  # check_filename refused folders in variant names; never write elsewhere
            raise MedcalError(f"internal: output {t} is outside {folder}")
    for t in targets:  # never over an input, a folder or a FIFO, before any work
        check_output_path(t, in_paths)
    ensure_dir(folder)
    # Formatting adds roughly 330 bytes a record; budget three times the input per output file.
    check_free_space(folder, 3 * input_bytes * (len(variants) + 2) + (1 << 20), "the formatted files")
    return _Targets(primary, folder, variants, variant_problems, targets)


class _RecordWriter:
    """Writes every record to every staged output and keeps what the validator, the log and the result need:
    the count, the populations, the narratives' digests, the ids, the log entries and the latin-1 note."""

    def __init__(self, stage: _Stage, targets: _Targets, variant: Variant, layout: str, all_variants: bool,
                 latin1_copy: bool, sources: _Sources) -> None:
        self.stage = stage
        self.variant = variant
        self.layout = layout
        self.all_variants = all_variants
        self.fh_primary = stage.open(targets.primary)
        self.fh_variants = [(v, stage.open(targets.folder / v.output_name)) for v in targets.variants]
        self.fh_original = stage.open(targets.folder / ORIGINAL_OUTPUT) if all_variants else None
        self.fh_latin = (stage.open(targets.paths[-1], encoding="latin-1") if latin1_copy else None)
        self.latin_note = ""
        self.entries = tempfile.TemporaryFile("w+", encoding="utf-8")  # log entries, streamed
        self.digests: list[bytes] = []
        self.ids: list[str] = []  # so validation messages name the records, not the staged temp file
        self.populations: dict[str, int] = {}
        self.enc_of = {str(p): info for p, info, _ in sources}
        self.load_issues: list[LoadIssue] = []
        self.n = 0

    def lines(self, sources: _Sources, options: LoadOptions, progress: ProgressCallback, cancel: CancelToken,
              meter: RateMeter) -> Iterator[tuple[int, str]]:
        """Write every output record by record, yielding the primary's lines to the validator."""
        lineno = 0
        for rec in iter_records(sources, options, self.load_issues):
            text = self._write(rec)
            if self.n % 500 == 0:
                cancel.check()
                progress(Progress("format", self.n, None, unit="records", rate=meter.rate(self.n),
                                  rate_unit="records"))
            body = text[:-1] if text.endswith("\n") else text
            for line in body.split("\n"):
                lineno += 1
                yield lineno, line

    def _write(self, rec: Record) -> str:
        """One record in every output; returns its primary text."""
        self.n += 1
        text = format_record(rec.text, self.variant, self.layout)
        self.fh_primary.write(text)
        for v, fh in self.fh_variants:
            fh.write(format_record(rec.text, v, self.layout))
        if self.fh_original is not None:
            self.fh_original.write(format_original(rec))
        if self.fh_latin is not None:
            try:
                self.fh_latin.write(text)
            except UnicodeEncodeError as exc:
                bad = exc.object[exc.start:exc.end]
                self.latin_note = (f"No latin-1 copy: record {rec.id} ({rec.source}, line {rec.line}) "
                                   f"has {bad!r} (U+{ord(bad[0]):04X}), which latin-1 cannot hold.")
                self.stage.drop(self.fh_latin)
                self.fh_latin = None
        self.digests.append(narrative_digest(rec.text))
        self.ids.append(rec.id)
        pop = rec.population
        self.populations[pop] = self.populations.get(pop, 0) + 1
        if self.all_variants:
            self.entries.write(json.dumps({
                "id": rec.id, "source": rec.source, "line": rec.line,
                "encoding": self.enc_of[rec.source].encoding, "population": pop, "topic": rec.topic,
                "chars": rec.chars, "bytes": len(rec.text.encode("utf-8")),
                "tokens_est": rec.tokens_est, "sha256": rec.sha256}, ensure_ascii=False) + "\n")
        return text


def _write_log_and_readme(stage: _Stage, targets: _Targets, w: _RecordWriter, report: ValidationReport,
                          files: list[dict[str, Any]]) -> None:
    """The seed set's log (every record's entry) and README (sizes and digests of the staged outputs)."""
    meta = {"medcal_version": __version__, "created": datetime.now(UTC).isoformat(),
            "variant": w.variant.name, "layout": w.layout, "record_count": w.n,
            "population_statistics": w.populations, "source_files": files,
            "token_estimate_total": report.tokens_total_est}
    with stage.open(targets.folder / LOG_NAME) as log:
        _write_log(log, meta, w.entries)
    outs = [(t, stage.tmp_of(t)) for t in targets.paths if t.name not in (README_NAME, LOG_NAME)
            and any(f == t for _, f, _ in stage.items)]
    sizes = {t.name: (tmp.stat().st_size, sha256_file(tmp)) for t, tmp in outs}
    with stage.open(targets.folder / README_NAME) as md:
        md.write(render_readme(meta, sizes, report, w.variant, targets.variants))


def export_dataset(inputs: Sequence[Path | str], *, out: Path | None = None, dest_dir: Path | None = None,
                   all_variants: bool = False, variant: Variant, layout: str = "seed",
                   options: LoadOptions | None = None, latin1_copy: bool = False,
                   progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> ExportResult:
    """Format `inputs` into `out` (one file) or, with `all_variants`, the seed's set in `dest_dir`."""
    options = options or LoadOptions()
    cancel = cancel or CancelToken()
    meter = RateMeter()
    sources = open_sources(inputs, options)
    in_paths = [p for p, _, _ in sources]
    targets = _plan_targets(in_paths, sum(p.stat().st_size for p in in_paths), out, dest_dir, all_variants,
                            latin1_copy)
    stage = _Stage()
    try:
        w = _RecordWriter(stage, targets, variant, layout, all_variants, latin1_copy, sources)
        # The validator drives the writer: one pass, and the primary file is checked as it is written.
        report = ValidationReport(source=str(targets.primary))
        validate_chat_lines(w.lines(sources, options, progress, cancel, meter), report, w.digests, w.ids,
                            variant.marker or None)
        cancel.check()
        stage.close_all()
        report.file_size = stage.tmp_of(targets.primary).stat().st_size
        finish_checks(report)  # the checklist (README, GUI) shows the written size
        if report.errors:
            raise MedcalError("The formatted output failed validation, so nothing was written: "
                              + "; ".join(report.errors[:5]))
        cancel.check()
        files = [{"path": str(p), "encoding": info.encoding, "encoding_method": info.method,
                  "chardet_confidence": info.confidence, "note": info.note} for p, info, _ in sources]
        warnings = (encoding_warnings([i for _, i, _ in sources], in_paths) + [i.message for i in w.load_issues]
                    + report.warnings + targets.variant_problems)
        notes = [w.latin_note] if w.latin_note else []
        if all_variants:
            _write_log_and_readme(stage, targets, w, report, files)
        w.entries.close()
        outputs = stage.commit()
    except BaseException:
        stage.abort()
        raise
    progress(Progress("validate", w.n, w.n, unit="records"))
    return ExportResult(outputs, w.n, w.populations, files, report, variant.name, layout, warnings, notes,
                        time.monotonic() - meter.start, w.load_issues)


def _write_log(log: IO[str], meta: dict[str, Any], entries: IO[str]) -> None:
    head = json.dumps(meta, ensure_ascii=False, indent=2)
    log.write(head[:-2] + ',\n  "records": [\n')
    entries.seek(0)
    first = True
    for line in entries:
        log.write(("" if first else ",\n") + "    " + line.rstrip("\n"))
        first = False
    log.write("\n  ]\n}\n")

