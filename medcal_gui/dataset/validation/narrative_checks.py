"""Per-narrative checks shared by the chat and narrative-file validation paths: empty, duplicate, very short
or long, damaged characters, special-token text, changed from its source, possible PHI."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from medcal_gui.dataset.records import estimate_tokens, population_of
from medcal_gui.dataset.special_tokens import find_special_token
from medcal_gui.dataset.validation import phi
from medcal_gui.dataset.validation.results import RecordStat, ValidationReport

SHORT_CHARS = 80  # a narrative shorter than this is suspicious
LONG_CHARS = 8000  # about 2,000 tokens: four imatrix chunks of 512 for one record
MAX_LISTED = 20  # per kind of warning, so a huge file gives a readable report


class Limited:
    """Collects messages of one kind, keeping the first MAX_LISTED and counting the rest."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.extra = 0

    def add(self, msg: str) -> None:
        if len(self.items) < MAX_LISTED:
            self.items.append(msg)
        else:
            self.extra += 1

    @property
    def total(self) -> int:
        return len(self.items) + self.extra

    def flush(self, out: list[str], what: str) -> None:
        out.extend(self.items)
        if self.extra:
            out.append(f"... and {self.extra} more {what}.")


def narrative_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def _bad_chars(text: str) -> str | None:
    m = _BAD_CHARS.search(text)
    if not m:
        return None
    ch = m.group(0)
    if ch == "\ufffd":
        return "U+FFFD (a replacement character: text was damaged by a lossy decode)"
    return f"U+{ord(ch):04X} (a control character: usually a wrong encoding)"


class NarrativeChecks:
    """Per-record checks shared by the chat and narrative paths."""

    def __init__(self, report: ValidationReport, sources: Sequence[bytes] | None) -> None:
        self.r = report
        self.sources = sources  # digests (narrative_digest) of the source narratives, in order
        self.seen: dict[bytes, str] = {}
        self.dups, self.short, self.long, self.damaged = Limited(), Limited(), Limited(), Limited()
        self.mismatch, self.special = Limited(), Limited()
        self.compared = 0
        self.phi_total = 0

    def add(self, rid: str, line: int, narrative: str, formatted_tokens: int,
            text_line: int | None = None) -> None:
        r = self.r
        idx = r.records
        r.records += 1
        pop = population_of(narrative)
        r.populations[pop] = r.populations.get(pop, 0) + 1
        r.tokens_total_est += formatted_tokens
        r.per_record.append(RecordStat(rid, line, pop, len(narrative), formatted_tokens))
        where = f"record {rid} (line {line})"
        digest = narrative_digest(narrative)
        if not narrative.strip():
            r.errors.append(f"{where} has an empty narrative.")
            r.count("empty")
        else:
            if digest in self.seen:
                self.dups.add(f"{where} duplicates record {self.seen[digest]}.")
            else:
                self.seen[digest] = rid
            if len(narrative) < SHORT_CHARS:
                self.short.add(f"{where} is very short ({len(narrative)} characters).")
            if len(narrative) > LONG_CHARS:
                self.long.add(f"{where} is very long ({len(narrative)} characters, about "
                              f"{estimate_tokens(narrative)} tokens).")
        bad = _bad_chars(narrative)
        if bad:
            self.damaged.add(f"{where} contains {bad}.")
        token = find_special_token(narrative)
        if token:
            self.special.add(f"{where} contains {token[0]} in its narrative: the model reads that text as a "
                             "special (control) token. Remove or rewrite it in the source.")
        if r.latin1_ok:
            try:
                narrative.encode("latin-1")
            except UnicodeEncodeError:
                r.latin1_ok = False
        if self.sources is not None:
            self.compared += 1
            if idx >= len(self.sources) or self.sources[idx] != digest:
                self.mismatch.add(f"{where}: the narrative differs from its source.")
        # PHI hits point at the file line they are on: the narrative may start below the record's line.
        hits = phi.scan(narrative, rid, line if text_line is None else text_line)
        self.phi_total += len(hits)
        for h in hits:
            if len(r.phi) < 1000:
                r.phi.append(h)

    def finish(self) -> None:
        r = self.r
        r.count("damaged", self.damaged.total)
        r.count("special", self.special.total)
        r.count("changed", self.mismatch.total)
        r.first_changed = self.mismatch.items[0] if self.mismatch.items else None
        self.damaged.flush(r.errors, "damaged records")
        self.special.flush(r.errors, "records with special-token text")
        self.mismatch.flush(r.errors, "changed narratives")
        r.compared = self.compared
        if self.sources is not None and len(self.sources) != r.records:
            r.errors.append(f"The file has {r.records} records but the source has {len(self.sources)}.")
            r.count("count_mismatch")
        for kind, lim in (("duplicates", self.dups), ("short", self.short), ("long", self.long)):
            r.count(kind, lim.total)
        r.count("phi", self.phi_total)
        self.dups.flush(r.warnings, "duplicates")
        self.short.flush(r.warnings, "very short records")
        self.long.flush(r.warnings, "very long records")
        listed = Limited()
        for h in r.phi:
            listed.add(f"Possible PHI in record {h.record_id} (line {h.line}): {h.label} ({h.text!r}).")
        listed.extra += self.phi_total - len(r.phi)
        listed.flush(r.warnings, "possible PHI matches")
