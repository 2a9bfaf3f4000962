"""Hand a quant over: gather what is known about a set of quants (their manifests, the base's metadata, the
imatrix, the calibration set's log, and the optional eval / ladder / behaviour JSON files) and write a folder
that hubs, Ollama, LM Studio and auditors read.

The folder holds the GGUFs named as hubs name them (`<model>-<TYPE>.gguf`), the mmproj and the imatrix,
their manifests, README.md (a model card, `model_card.py`), one Ollama Modelfile per GGUF (`modelfile.py`),
`publish.json` (what this folder holds and of which base) and `SHA256SUMS` (every file, sha256sum format).
Files are hard-linked when the folder is on the same file system, else copied, each through a temporary
name; nothing is ever written over an input. What goes in comes from `publish_facts.gather_facts`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medcal_gui.core.errors import InputError, OutputError
from medcal_gui.core.fsutil import ensure_dir, make_temp, refuse_input_overwrite, sha256_file, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.workflows.handover.publish_facts import PublishFacts, QuantFile, quant_file, read_json

PUBLISH_MANIFEST = "publish.json"
SUMS_NAME = "SHA256SUMS"
CARD_NAME = "README.md"


@dataclass
class PublishResult:
    folder: Path
    files: list[str]
    linked: int
    copied: int
    facts: PublishFacts
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": self.files, "linked": self.linked, "copied": self.copied,
                "model_name": self.facts.model_name, "base_sha256": self.facts.base.get("sha256"),
                "warnings": self.warnings}


def check_phi(calibration: Path, confirmed: Sequence[str]) -> list[str]:
    """Refuse to publish calibration text the PHI scan flags, unless the user named the file to confirm."""
    from medcal_gui.dataset.validation.phi import scan

    text = calibration.read_text(encoding="utf-8", errors="replace")
    hits = scan(text, calibration.name, 1)
    if not hits:
        return []
    kinds = sorted({h.label for h in hits})
    where = f"{calibration.name}, line {hits[0].line}: {hits[0].label}"
    if calibration.name not in confirmed:
        raise InputError(f"The PHI scan flagged {len(hits)} possible identifier(s) in the calibration text "
                         f"({where}; {', '.join(kinds)}), so it was not published. Remove them, publish "
                         f"without --include-calibration, or confirm with --yes-publish-flagged "
                         f"{calibration.name}.")
    return [f"Published {calibration.name} although the PHI scan flagged {len(hits)} possible identifier(s) "
            f"({', '.join(kinds)}): confirmed by name."]


def _place(src: Path, dest: Path, inputs: Sequence[Path]) -> str:
    """Hard link (same file system) or copy `src` to `dest` through a temporary name: 'linked'/'copied'/'kept'."""
    refuse_input_overwrite(dest, [i for i in inputs if i != src])
    if dest.exists() and os.path.samefile(src, dest):
        return "kept"
    fd, tmp = make_temp(dest.parent, ".tmp")
    os.close(fd)
    tmp.unlink()
    try:
        try:
            os.link(src, tmp)
            how = "linked"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(src, tmp)
            how = "copied"
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return how


def _earlier_quants(dest: Path, facts: PublishFacts) -> list[QuantFile]:
    """The quants an earlier publish of the same base left in `dest`, so the card lists the whole folder."""
    doc = read_json(dest / PUBLISH_MANIFEST, "publish manifest") if (dest / PUBLISH_MANIFEST).is_file() else None
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


def _refuse_foreign(dest: Path, placed: Sequence[tuple[Path, str]], written: Sequence[str]) -> None:
    """Never replace a file medcal did not publish there (a README.md of the user's, say)."""
    doc = read_json(dest / PUBLISH_MANIFEST, "publish manifest") if (dest / PUBLISH_MANIFEST).is_file() else None
    ours = {str(f) for f in (doc or {}).get("files", [])} | ({PUBLISH_MANIFEST, SUMS_NAME} if doc else set())
    clash = [n for s, n in placed if (dest / n).exists() and n not in ours and not os.path.samefile(s, dest / n)]
    clash += [n for n in (*written, CARD_NAME, PUBLISH_MANIFEST, SUMS_NAME) if (dest / n).exists() and n not in ours]
    if clash:
        raise OutputError(f"{dest} already holds {', '.join(sorted(set(clash)))}, which medcal did not publish "
                          "there: it will not replace them. Publish into an empty folder (or one medcal "
                          "published to before).")


def _check_folder(dest: Path, facts: PublishFacts) -> None:
    existing = dest / PUBLISH_MANIFEST
    if not existing.is_file():
        return
    doc = read_json(existing, "publish manifest") or {}
    had = doc.get("base_sha256")
    if had and facts.base.get("sha256") and had != facts.base["sha256"]:
        raise InputError(f"{dest} already holds the quants of another base model ({doc.get('model_name')}, "
                         f"sha256 {had[:12]}…): one folder holds one base's quants. Choose another folder.")


def publish_folder(facts: PublishFacts, dest: Path, *, include_calibration: bool = False,
                   confirm_flagged: Sequence[str] = (), progress: ProgressCallback = no_progress,
                   cancel: CancelToken | None = None) -> PublishResult:
    """Write the publish folder for `facts` (see the module's docstring)."""
    from medcal_gui.workflows.handover.model_card import render_card
    from medcal_gui.workflows.handover.ollama_modelfile import modelfile_name, render_modelfile

    cancel = cancel or CancelToken()
    dest = Path(dest)
    warnings = list(facts.warnings)
    calib = facts.calibration or {}
    if include_calibration:
        if not calib.get("path"):
            raise InputError("--include-calibration needs the calibration text (--calibration FILE).")
        warnings += check_phi(Path(calib["path"]), confirm_flagged)
    _check_folder(dest, facts)
    ensure_dir(dest)
    earlier_quants = _earlier_quants(dest, facts)
    inputs = [q.source for q in facts.quants] + [Path(p) for p in (facts.base.get("path"),
                                                                    (facts.imatrix or {}).get("path")) if p]
    inputs += [facts.mmproj] if facts.mmproj else []
    placed: list[tuple[Path, str]] = [(q.source, q.name) for q in facts.quants]
    if facts.mmproj:
        placed.append((facts.mmproj, f"mmproj-{facts.model_name}-{facts.mmproj.stem.split('-')[-1].upper()}.gguf"
                       if not facts.mmproj.name.startswith("mmproj-" + facts.model_name) else facts.mmproj.name))
    if facts.imatrix:
        placed.append((Path(facts.imatrix["path"]), f"{facts.model_name}.imatrix.gguf"
                       if Path(facts.imatrix["path"]).suffix == ".gguf" else f"{facts.model_name}.imatrix.dat"))
    if include_calibration:
        placed.append((Path(calib["path"]), calib["file"]))
        if calib.get("log"):
            placed.append((Path(calib["log"]), Path(calib["log"]).name))
    _refuse_foreign(dest, placed, [n for q in facts.quants for n in (q.name + ".manifest.json",
                                                                      modelfile_name(q.name))])
    counts = {"linked": 0, "copied": 0, "kept": 0}
    files: list[str] = []
    total = len(placed) + 3
    for i, (src, name) in enumerate(placed):
        cancel.check()
        progress(Progress("publish", i, total, unit="files", message=name))
        counts[_place(src, dest / name, inputs)] += 1
        files.append(name)
    by_src = {str(s): n for s, n in placed}
    mmproj_name = by_src.get(str(facts.mmproj)) if facts.mmproj else None
    imatrix_name = by_src.get(str(facts.imatrix["path"])) if facts.imatrix else None
    lic = facts.base.get("license_name") or facts.base.get("license")
    for q in facts.quants:
        if q.manifest is not None:
            doc = dict(q.manifest, published_as=q.name)
            write_text_atomic(dest / (q.name + ".manifest.json"), json.dumps(doc, indent=2, ensure_ascii=False)
                              + "\n")
            files.append(q.name + ".manifest.json")
        write_text_atomic(dest / modelfile_name(q.name),
                          render_modelfile(q.name, mmproj_name=mmproj_name, license_name=str(lic) if lic else None,
                                           source_note=f"{q.qtype} of {facts.base.get('name') or facts.model_name}"))
        files.append(modelfile_name(q.name))
    card_facts = replace(facts, quants=facts.quants + earlier_quants)
    write_text_atomic(dest / CARD_NAME, render_card(card_facts, imatrix_name=imatrix_name, mmproj_name=mmproj_name,
                                                    include_calibration=include_calibration))
    files.append(CARD_NAME)
    earlier = (read_json(dest / PUBLISH_MANIFEST, "publish manifest") or {}).get("files", []) \
        if (dest / PUBLISH_MANIFEST).is_file() else []
    held = sorted({*files, *(str(f) for f in earlier if (dest / str(f)).is_file())} - {PUBLISH_MANIFEST})
    pub = {"created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "model_name": facts.model_name,
           "base_sha256": facts.base.get("sha256"), "base": facts.base.get("file"), "files": held,
           "versions": facts.versions}
    write_text_atomic(dest / PUBLISH_MANIFEST, json.dumps(pub, indent=2, ensure_ascii=False) + "\n")
    files.append(PUBLISH_MANIFEST)
    progress(Progress("publish", total - 1, total, unit="files", message=SUMS_NAME))
    write_sums(dest, held + [PUBLISH_MANIFEST])
    files.append(SUMS_NAME)
    progress(Progress("publish", total, total, unit="files", message="done"))
    return PublishResult(dest, files, counts["linked"], counts["copied"], facts, warnings)


def write_sums(dest: Path, names: Sequence[str]) -> None:
    """SHA256SUMS over the published files (this publish's and earlier ones' of the same base), as
    `sha256sum -c` reads it; other files the user keeps in the folder are not listed."""
    names = sorted(set(names))
    lines = [f"{sha256_file(dest / n)}  {n}" for n in names]
    if any("\n" in n or "\\" in n for n in names):
        raise OutputError(f"A file name in {dest} holds a newline or backslash; SHA256SUMS cannot list it.")
    write_text_atomic(dest / SUMS_NAME, "\n".join(lines) + "\n")
