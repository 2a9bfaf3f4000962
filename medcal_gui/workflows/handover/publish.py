"""Hand a quant over: gather what is known about a set of quants (their manifests, the base's metadata, the
imatrix, the calibration set's log, and the optional eval / ladder / behaviour JSON files) and write a folder
that hubs, Ollama, LM Studio and auditors read.

The folder holds the GGUFs named as hubs name them (`<model>-<TYPE>.gguf`), the mmproj and the imatrix,
their manifests, README.md (a model card, `model_card.py`), one Ollama Modelfile per GGUF (`ollama_modelfile.py`),
`publish.json` (what this folder holds and of which base) and `SHA256SUMS` (every file, sha256sum format).

In two steps, so that nothing is written until every check has passed: `plan_publish` computes every file
name and every text, checks them (plain names inside the folder, Modelfiles that parse as exactly the
instructions meant, no file of the user's replaced, no input overwritten, the PHI scan) and lists what will be
copied from where and why (`PublishPlan.describe`, which the CLI prints and the window shows); then
`write_publish` stages each file under a temporary name in the folder (a hard link when the folder is on the
same file system, else a copy), hashes them for SHA256SUMS and renames them all into place at the end. A
failure or a cancel removes the temporaries (and the folder, when this publish created it).
Only files the user named, or that a manifest names and records the sha256 of, are copied
(`publish_facts.gather_facts` decides which, `PublishFacts.sources` says why).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import DataError, InputError, OutputError
from medcal_gui.core.fsutil import ensure_dir, make_temp, refuse_input_overwrite, remove_stale_partials, sha256_file
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.text_files import read_utf8
from medcal_gui.workflows.handover.escaping import PLAIN_NAME, check_plain_name, one_line, safe_file_name, slug
from medcal_gui.workflows.handover.publish_facts import PublishFacts, QuantFile, quant_file, read_json

PUBLISH_MANIFEST = "publish.json"
SUMS_NAME = "SHA256SUMS"
CARD_NAME = "README.md"


@dataclass
class Copy:
    """A file copied (or hard-linked) into the folder: from where, under which name, and why it may be."""

    source: Path
    name: str
    why: str


@dataclass
class PublishPlan:
    folder: Path
    facts: PublishFacts
    copies: list[Copy]
    texts: dict[str, str]  # name -> content: manifests, Modelfiles, README.md, publish.json
    held: list[str]  # every file SHA256SUMS lists: this publish's and an earlier one's of the same base
    warnings: list[str]
    creates_folder: bool
    inputs: list[Path] = field(default_factory=list)

    def describe(self) -> list[str]:
        """What will be copied and written, one line each, for a person to read before anything is."""
        out = [f"copy  {c.name}  <-  {one_line(c.source, 300)}  ({c.why})" for c in self.copies]
        out += [f"write {n}" for n in self.texts] + [f"write {SUMS_NAME}"]
        return out


@dataclass
class PublishResult:
    folder: Path
    files: list[str]
    linked: int
    copied: int
    facts: PublishFacts
    warnings: list[str] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": self.files, "linked": self.linked, "copied": self.copied,
                "copied_from": [{"name": c.name, "source": str(c.source), "why": c.why} for c in self.copies],
                "model_name": self.facts.model_name, "base_sha256": self.facts.base.get("sha256"),
                "warnings": self.warnings}


def check_phi(calibration: Path, confirmed: Sequence[str]) -> list[str]:
    """Refuse to publish calibration text the PHI scan flags, unless the user named the file to confirm."""
    from medcal_gui.dataset.validation.phi import scan

    text = read_utf8(calibration, "calibration text", not_utf8_hint=" Publish the file `medcal format` wrote.")
    hits = scan(text, calibration.name, 1)
    if not hits:
        return []
    kinds = sorted({h.label for h in hits})
    name = one_line(calibration.name, 120)
    where = f"{name}, line {hits[0].line}: {hits[0].label}"
    if calibration.name not in confirmed:
        raise InputError(f"The PHI scan flagged {len(hits)} possible identifier(s) in the calibration text "
                         f"({where}; {', '.join(kinds)}), so it was not published. Remove them, publish "
                         f"without --include-calibration, or confirm with --yes-publish-flagged {name}.")
    return [f"Published {name} although the PHI scan flagged {len(hits)} possible identifier(s) "
            f"({', '.join(kinds)}): confirmed by name."]


def _folder_doc(dest: Path) -> dict[str, Any] | None:
    """The folder's publish.json, its file names checked: each a plain name inside the folder."""
    path = dest / PUBLISH_MANIFEST
    if not os.path.lexists(path):
        return None
    doc = read_json(path, "publish manifest") or {}
    for i, name in enumerate(doc.get("files") or []):
        if not PLAIN_NAME.fullmatch(name):
            raise DataError(f'the publish manifest\'s key "files[{i}]" holds {one_line(name, 60)!r}, which is not a '
                            "plain file name in the folder. Publish into another folder (this publish.json was "
                            "not written by medcal).", str(path))
    return doc


def _earlier_quants(dest: Path, doc: dict[str, Any] | None, facts: PublishFacts) -> list[QuantFile]:
    """The quants an earlier publish of the same base left in `dest`, so the card lists the whole folder."""
    listed = [str(f) for f in (doc or {}).get("files", [])]
    now = {q.name for q in facts.quants}
    out = []
    for name in listed:
        if name.endswith(".gguf") and name not in now and name.removesuffix(".gguf") + ".Modelfile" in listed \
                and (dest / name).is_file():
            m = dest / (name + ".manifest.json")
            manifest = read_json(m, "quantize manifest") if m.is_file() else None
            out.append(quant_file(dest / name, manifest, facts.model_name, int(facts.base.get("parameters") or 0),
                                  facts.eval, facts.ladder, facts.agree, facts.mcq, name=name))
    return out


def _is_regular(p: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(p).st_mode)
    except OSError:
        return False


def _refuse_foreign(dest: Path, doc: dict[str, Any] | None, copies: Sequence[Copy], written: Sequence[str]) -> None:
    """Never replace a file medcal did not publish there (a README.md of the user's, say)."""
    ours = {str(f) for f in (doc or {}).get("files", [])} | ({PUBLISH_MANIFEST, SUMS_NAME} if doc else set())
    clash = [c.name for c in copies if os.path.lexists(dest / c.name) and c.name not in ours
             and not (_is_regular(dest / c.name) and os.path.samefile(c.source, dest / c.name))]
    clash += [n for n in (*written, SUMS_NAME) if os.path.lexists(dest / n) and n not in ours]
    if clash:
        raise OutputError(f"{dest} already holds {', '.join(sorted(set(clash)))}, which medcal did not publish "
                          "there: it will not replace them. Publish into an empty folder (or one medcal "
                          "published to before).")


def _check_folder(dest: Path, doc: dict[str, Any] | None, facts: PublishFacts) -> bool:
    """True when the folder is to be created. Refuses a file in its place, an unwritable parent, and a folder
    holding another base's quants."""
    if os.path.lexists(dest) and not dest.is_dir():
        raise OutputError(f"{dest} is not a folder: publish into a folder (-d DIR).")
    probe = dest
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write to the folder {dest}: {probe} is not a folder you can write to.")
    had = (doc or {}).get("base_sha256")
    if had and facts.base.get("sha256") and had != facts.base["sha256"]:
        raise InputError(f"{dest} already holds the quants of another base model "
                         f"({one_line((doc or {}).get('model_name'), 80)}, sha256 {had[:12]}…): one folder holds "
                         "one base's quants. Choose another folder.")
    return not os.path.lexists(dest)


def _copies(facts: PublishFacts, include_calibration: bool) -> tuple[list[Copy], dict[str, Any] | None]:
    """What is copied, under which name and why (from `facts.sources`: a file the user named, or one a
    manifest names whose sha256 it records and which matches it)."""
    def why(p: Path | str) -> str:
        reason = facts.sources.get(str(p))
        if reason is None:  # gather_facts decides what may be published; nothing else is copied
            raise OutputError(f"medcal refused to publish {one_line(p, 200)}: neither named by you nor recorded "
                              "with its sha256 by the quants' manifests. Nothing was written.")
        return reason

    copies = [Copy(q.source, q.name, why(q.source)) for q in facts.quants]
    m = facts.mmproj
    if m is not None:
        suffix = slug(m.stem.split("-")[-1].upper(), "F16")
        name = safe_file_name(m.name, "mmproj.gguf") if m.name.startswith("mmproj-" + facts.model_name) \
            else f"mmproj-{facts.model_name}-{suffix}.gguf"
        copies.append(Copy(m, name, why(m)))
    im = facts.imatrix or {}
    if im.get("path"):
        src = Path(im["path"])
        with open(src, "rb") as fh:
            ext = "gguf" if fh.read(4) == b"GGUF" else "dat"
        copies.append(Copy(src, f"{facts.model_name}.imatrix.{ext}", why(src)))
    calib = facts.calibration
    if include_calibration:
        calib = dict(calib or {})
        if not calib.get("path"):
            raise InputError("--include-calibration needs the calibration text (--calibration FILE).")
        calib["published_as"] = safe_file_name(str(calib["file"]), "calibration.txt")
        copies.append(Copy(Path(calib["path"]), calib["published_as"], why(calib["path"])))
        if calib.get("log"):
            copies.append(Copy(Path(calib["log"]), safe_file_name(Path(calib["log"]).name, "dataset_log.json"),
                               why(calib["log"])))
    for c in copies:
        check_plain_name(c.name, f"published copy of {one_line(c.source.name, 80)}")
    return copies, calib


def plan_publish(facts: PublishFacts, dest: Path, *, include_calibration: bool = False,
                 confirm_flagged: Sequence[str] = ()) -> PublishPlan:
    """Every file of the publish folder, computed and checked; writes nothing."""
    from medcal_gui.workflows.handover.model_card import render_card
    from medcal_gui.workflows.handover.ollama_modelfile import modelfile_name, render_modelfile

    dest = Path(dest)
    warnings = list(facts.warnings)
    copies, calib = _copies(facts, include_calibration)
    if include_calibration and calib:
        warnings += check_phi(Path(calib["path"]), confirm_flagged)
    doc = _folder_doc(dest)
    creates = _check_folder(dest, doc, facts)
    earlier_quants = _earlier_quants(dest, doc, facts) if not creates else []
    names = {c.source: c.name for c in copies}
    mmproj_name = names.get(facts.mmproj) if facts.mmproj else None
    im_path = (facts.imatrix or {}).get("path")
    imatrix_name = names.get(Path(im_path)) if im_path else None
    lic = facts.base.get("license_name") or facts.base.get("license")
    texts: dict[str, str] = {}
    for q in facts.quants:
        if q.manifest is not None:
            texts[q.name + ".manifest.json"] = json.dumps(dict(q.manifest, published_as=q.name), indent=2,
                                                          ensure_ascii=False) + "\n"
        texts[modelfile_name(q.name)] = render_modelfile(
            q.name, mmproj_name=mmproj_name, license_name=str(lic) if lic else None,
            source_note=f"{q.qtype} of {facts.base.get('name') or facts.model_name}")
    card_facts = replace(facts, quants=facts.quants + earlier_quants, calibration=calib)
    texts[CARD_NAME] = render_card(card_facts, imatrix_name=imatrix_name, mmproj_name=mmproj_name,
                                   include_calibration=include_calibration)
    now = [c.name for c in copies] + list(texts)
    kept = [str(f) for f in (doc or {}).get("files", []) if _is_regular(dest / str(f))]
    held = sorted({*now, *kept} - {PUBLISH_MANIFEST, SUMS_NAME})
    pub = {"created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "model_name": facts.model_name,
           "base_sha256": facts.base.get("sha256"), "base": facts.base.get("file"),
           "files": held, "versions": facts.versions}
    texts[PUBLISH_MANIFEST] = json.dumps(pub, indent=2, ensure_ascii=False) + "\n"
    every = [c.name for c in copies] + list(texts)
    dup = next((n for n in every if every.count(n) > 1 or n == SUMS_NAME), None)
    if dup:
        raise OutputError(f"Two of the published files would both be named {dup}; nothing was written.")
    for n in every:
        check_plain_name(n, "published file")
    _refuse_foreign(dest, doc, copies, list(texts))
    inputs = [q.source for q in facts.quants] + [Path(p) for p in (facts.base.get("path"), im_path) if p]
    inputs += [facts.mmproj] if facts.mmproj else []
    inputs += [Path(p) for p in ((calib or {}).get("path"), (calib or {}).get("log")) if p]
    for c in copies:
        refuse_input_overwrite(dest / c.name, [i for i in inputs if i != c.source])
    for q in facts.quants:  # a quant's own manifest is an input too, unless the quant is already the published file
        if not (_is_regular(dest / q.name) and os.path.samefile(q.source, dest / q.name)):
            inputs.append(q.source.with_name(q.source.name + ".manifest.json"))
    for n in texts:
        refuse_input_overwrite(dest / n, inputs)
    return PublishPlan(dest, facts, copies, texts, held, warnings, creates, inputs)


def _stage_copy(src: Path, folder: Path) -> tuple[Path, str]:
    """A hard link (same file system) or a copy of `src` under a temporary name in `folder`."""
    fd, tmp = make_temp(folder, ".tmp")
    os.close(fd)
    tmp.unlink()
    try:
        try:
            os.link(src, tmp)
            return tmp, "linked"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(src, tmp)
            return tmp, "copied"
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _stage_text(text: str, folder: Path) -> Path:
    fd, tmp = make_temp(folder, ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def write_publish(plan: PublishPlan, *, progress: ProgressCallback = no_progress,
                  cancel: CancelToken | None = None) -> PublishResult:
    """Write what `plan` holds: every file staged under a temporary name, then all renamed into place."""
    cancel = cancel or CancelToken()
    dest = plan.folder
    ensure_dir(dest)
    warnings = plan.warnings + remove_stale_partials(dest, ".tmp")  # ours, of a publish killed with kill -9
    staged: dict[str, Path] = {}
    counts = {"linked": 0, "copied": 0, "kept": 0}
    total = len(plan.copies) + len(plan.texts) + 1
    try:
        for i, c in enumerate(plan.copies):
            cancel.check()
            progress(Progress("publish", i, total, unit="files", message=c.name))
            if _is_regular(dest / c.name) and os.path.samefile(c.source, dest / c.name):
                counts["kept"] += 1
                continue
            staged[c.name], how = _stage_copy(c.source, dest)
            counts[how] += 1
        sums: dict[str, str] = {}
        for n, text in plan.texts.items():
            cancel.check()
            staged[n] = _stage_text(text, dest)
            sums[n] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        progress(Progress("publish", total - 1, total, unit="files", message=SUMS_NAME))
        for n in plan.held:
            cancel.check()
            if n not in sums:
                sums[n] = sha256_file(staged.get(n, dest / n))
        listed = sorted({*plan.held, PUBLISH_MANIFEST})
        staged[SUMS_NAME] = _stage_text("".join(f"{sums[n]}  {n}\n" for n in listed), dest)
        cancel.check()
        for n, tmp in staged.items():  # SHA256SUMS last: it was staged last
            os.replace(tmp, dest / n)
    except BaseException:
        for tmp in staged.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        if plan.creates_folder:
            with contextlib.suppress(OSError):
                dest.rmdir()  # only when empty: this publish created it
        raise
    progress(Progress("publish", total, total, unit="files", message="done"))
    files = [c.name for c in plan.copies] + list(plan.texts) + [SUMS_NAME]
    return PublishResult(dest, files, counts["linked"], counts["copied"], plan.facts, warnings, plan.copies)


def publish_folder(facts: PublishFacts, dest: Path, *, include_calibration: bool = False,
                   confirm_flagged: Sequence[str] = (), progress: ProgressCallback = no_progress,
                   cancel: CancelToken | None = None) -> PublishResult:
    """Plan, check and write the publish folder for `facts` (see the module's docstring)."""
    plan = plan_publish(facts, dest, include_calibration=include_calibration, confirm_flagged=confirm_flagged)
    return write_publish(plan, progress=progress, cancel=cancel)
