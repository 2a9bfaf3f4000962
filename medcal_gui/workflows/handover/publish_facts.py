"""What is known about a set of quants of one base, read from files: their manifests, the base's GGUF
metadata (name, licence, description), the imatrix, the calibration set's log and the optional eval /
ladder / behaviour-check JSON files. Shared by `medcal publish` (the folder and its model card) and
`medcal report` (the printable governance report). Refuses quants of different bases.

Which files may be published: those the user named (the quants, --base, --imatrix, --mmproj, --calibration,
--dataset-log, and a projector found beside the --base the user named), and a file a manifest names only when
the manifest records its sha256, the file still matches it and it is the right kind of file (an importance
matrix a GGUF or .dat imatrix). A manifest that came with a downloaded quant could name ~/.ssh/id_rsa.
Every JSON file is checked against the shape medcal writes it in (`shapes.py`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui import __version__
from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import sha256_file
from medcal_gui.core.jobs import CancelToken
from medcal_gui.core.units import format_bytes
from medcal_gui.workflows.handover.escaping import one_line, shell_word, slug
from medcal_gui.workflows.handover.shapes import read_json

__all__ = ["PublishFacts", "QuantFile", "gather_facts", "gguf_metadata", "quant_file", "read_json", "slug"]
IMATRIX_LIMIT = 1 << 30  # bytes: a 27B model's importance matrix is tens of MB


@dataclass
class QuantFile:
    source: Path
    name: str  # the published name, <model>-<TYPE>.gguf
    qtype: str
    bytes: int
    sha256: str
    manifest: dict[str, Any] | None
    figures: dict[str, Any] = field(default_factory=dict)  # bpw, kld_mean, same_top_pct, ppl_ratio, ...

    def rebuild_commands(self, base_name: str, imatrix_name: str | None) -> list[str]:
        """Shell commands that rebuild this file; every word quoted for the shell (a base file name is the
        user's and may hold anything)."""
        opts = (self.manifest or {}).get("options") or {}
        extra = ""
        if opts.get("output_tensor_type"):
            extra += f" --output-tensor-type {shell_word(opts['output_tensor_type'])}"
        if opts.get("token_embedding_type"):
            extra += f" --token-embedding-type {shell_word(opts['token_embedding_type'])}"
        if opts.get("pure"):
            extra += " --pure"
        base, name, qtype = shell_word(base_name), shell_word(self.name), shell_word(self.qtype)
        im = f" --imatrix {shell_word(imatrix_name)}" if imatrix_name and (self.manifest or {}).get("imatrix") else ""
        return [f"medcal quantize --model {base}{im} --type {qtype}{extra} -o {name}",
                f"llama-quantize{im}{extra} {base} {name} {qtype}"]


@dataclass
class PublishFacts:
    model_name: str
    base: dict[str, Any]  # path, name, sha256, license, description, architecture, parameters, bytes
    quants: list[QuantFile]
    imatrix: dict[str, Any] | None  # "path" only when the file may be published (see the module's docstring)
    calibration: dict[str, Any] | None  # the dataset log's summary and the text's hash (never the text)
    mmproj: Path | None
    eval: dict[str, Any] | None
    ladder: dict[str, Any] | None
    agree: dict[str, Any] | None
    mcq: dict[str, Any] | None
    versions: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # str(path) -> why it may be published

    def to_json(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "base": self.base,
                "quants": [{"source": str(q.source), "name": q.name, "type": q.qtype, "bytes": q.bytes,
                            "sha256": q.sha256, "figures": q.figures} for q in self.quants],
                "imatrix": self.imatrix, "calibration": self.calibration,
                "mmproj": str(self.mmproj) if self.mmproj else None, "versions": self.versions,
                "warnings": self.warnings}


def regular_file(path: Path, what: str) -> Path:
    """`path` when it is a regular file (links followed); a FIFO, device or folder would hang or mislead the
    hashing and copying below."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"The {what} {path} does not exist.") from None
    except OSError as exc:
        raise InputError(f"Cannot read the {what} {path}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"The {what} {path} is not a regular file (a folder, pipe or device): give the file.")
    return Path(path)


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The general.* strings and numbers of a GGUF (name, license, description, ...), and its file type."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not a readable GGUF file ({one_line(exc)}).") from None
    out: dict[str, Any] = {}
    for key, f in reader.fields.items():
        if not (key.startswith("general.") or key.startswith("clip.") or key == "tokenizer.chat_template"):
            continue
        with contextlib.suppress(ValueError, IndexError, UnicodeDecodeError):
            v = f.contents()
            if isinstance(v, str | int | float | bool) or (isinstance(v, list) and len(v) < 50):
                out[key] = v
    out["_tensors"] = len(reader.tensors)
    out["_params"] = int(sum(int(t.n_elements) for t in reader.tensors))
    return out


def _type_of(path: Path, manifest: dict[str, Any] | None) -> str:
    if manifest and isinstance(manifest.get("type"), dict) and manifest["type"].get("name"):
        return str(manifest["type"]["name"])  # a type of the table: shapes.MANIFEST checked it
    from medcal_gui.inspection.model_info import inspect_model

    return slug(inspect_model(path).file_type, "unknown")


def _manifest_of(q: Path) -> dict[str, Any] | None:
    m = q.with_name(q.name + ".manifest.json")
    return read_json(m, "quantize manifest") if os.path.lexists(m) else None


def _by_file(items: Iterable[dict[str, Any]], key: str, q: QuantFile) -> dict[str, Any] | None:
    for it in items:
        v = it.get(key)
        if v and (Path(str(v)).name in (q.source.name, q.name) or it.get("sha256") == q.sha256):
            return it
    return None


def _figures(q: QuantFile, params: int, ev: dict[str, Any] | None, ladder: dict[str, Any] | None,
             agree: dict[str, Any] | None, mcq: dict[str, Any] | None) -> dict[str, Any]:
    fig: dict[str, Any] = {"bpw": round(q.bytes * 8 / params, 2) if params else None}
    rung = _by_file((ladder or {}).get("rungs", []), "file", q)
    if rung:
        for k in ("bpw", "kld_mean", "kld_p99", "same_top_pct", "ppl_ratio", "pp_tokens_per_s",
                  "tg_tokens_per_s", "speedup_tg", "pareto"):
            if rung.get(k) is not None:
                fig[k] = rung[k]
    m = _by_file((ev or {}).get("models", []), "model", q)
    if m:
        for k in ("kld_mean", "kld_p99", "kld_median", "same_top_pct", "ppl_ratio", "rms_dp_pct"):
            if m.get(k) is not None:
                fig[k] = m[k]
        fig.setdefault("eval_tokens_per_s", m.get("tokens_per_s"))
    a = _by_file((agree or {}).get("models", []), "model", q)
    if a and isinstance(a.get("identical"), dict):
        fig["agreement"] = a["identical"]
        fig["facts_kept"] = a.get("facts_kept")
    c = _by_file((mcq or {}).get("models", []), "model", q)
    if c and isinstance(c.get("accuracy"), dict):
        fig["accuracy"] = c["accuracy"]
        for f in (mcq or {}).get("flips", []):
            if f.get("b") == c.get("name"):
                fig["flips"] = {"lost": f.get("n_lost"), "gained": f.get("n_gained"), "p": f.get("mcnemar_p")}
    return fig


def _calibration(calibration: Path | None, dataset_log: Path | None,
                 manifests: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    if dataset_log is None and calibration is not None:
        beside = calibration.with_name("calibration_dataset_log.json")
        dataset_log = beside if beside.is_file() else None
    meta = read_json(dataset_log, "calibration dataset log")
    written = next((m.get("metadata_written") or {} for m in manifests if m.get("metadata_written")), {})
    out: dict[str, Any] = {}
    if meta:
        out.update({"log": str(dataset_log), "records": meta.get("record_count"),
                    "populations": meta.get("population_statistics") or {}, "variant": meta.get("variant"),
                    "layout": meta.get("layout"), "token_estimate": meta.get("token_estimate_total"),
                    "created": meta.get("created"), "log_sha256": sha256_file(Path(str(dataset_log)))})
    if calibration is not None:
        regular_file(calibration, "calibration text")
        out.update({"file": calibration.name, "path": str(calibration), "sha256": sha256_file(calibration),
                    "bytes": calibration.stat().st_size})
    if "sha256" not in out and written.get("medcal.calibration.sha256"):
        out["sha256"] = written["medcal.calibration.sha256"]
    return out or None


def not_an_imatrix(path: Path) -> str | None:
    """Why `path` is not an importance matrix (GGUF with `*.in_sum2` tensors, or llama.cpp's legacy .dat), or
    None when it is one. A well-known file whose sha256 anyone can compute (/etc/passwd) fails here."""
    from medcal_gui.calibrate.imatrix_io import ImatrixData

    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            gguf = fh.read(4) == b"GGUF"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if not gguf and size > IMATRIX_LIMIT:
        return f"{format_bytes(size)} and not a GGUF file"
    try:
        ImatrixData.load(path)
    except (InputError, ValueError) as exc:
        return one_line(exc, 200)
    return None


def _imatrix_info(imatrix: Path | None, manifests: Sequence[dict[str, Any] | None], sources: dict[str, str],
                  warnings: list[str]) -> dict[str, Any] | None:
    rec: dict[str, Any] = next((m["imatrix"] for m in manifests if m and m.get("imatrix")), {})
    path: Path | None = None
    if imatrix is not None:  # named by the user: it must be an imatrix, and the quants' one where recorded
        path = regular_file(Path(imatrix), "importance matrix")
        why = not_an_imatrix(path)
        if why:
            raise InputError(f"The importance matrix {path} (--imatrix) is not one ({why}). Give the "
                             ".imatrix.gguf (or .dat) that `medcal imatrix` wrote.")
        sha = sha256_file(path)
        if rec.get("sha256") and rec["sha256"] != sha:
            raise InputError(f"The importance matrix {imatrix} is not the one the quants were made with "
                             f"(sha256 {sha[:12]}…, manifest says {rec['sha256'][:12]}…).")
        sources[str(path)] = "the importance matrix you named (--imatrix)"
    elif rec:
        sha = rec.get("sha256") or ""
        path = _recorded_imatrix(rec, warnings)
        if path is not None:
            sources[str(path)] = "the importance matrix the manifests name; its sha256 matches theirs"
    else:
        return None
    info: dict[str, Any] = {
        "file": path.name if path else Path(str(rec.get("path") or "imatrix")).name,
        "path": str(path) if path else None, "sha256": sha,
        **{k: rec.get(k) for k in ("entries", "chunk_count", "chunk_size")},
        # file names only: a folder path can name a person or a ward
        "datasets": [Path(str(x)).name for x in rec.get("datasets") or []]}
    if info.get("chunk_count") and info.get("chunk_size"):
        info["tokens"] = int(info["chunk_count"]) * int(info["chunk_size"])
    return info


def _recorded_imatrix(rec: dict[str, Any], warnings: list[str]) -> Path | None:
    """The importance matrix a manifest names, when it may be published: the manifest records its sha256, the
    file still matches it, and it is an importance matrix. Otherwise None, with a warning saying why."""
    if not rec.get("path"):
        return None
    path = Path(str(rec["path"]))
    shown = one_line(path, 200)
    hint = " Give it with --imatrix FILE to publish it."
    try:
        st = os.stat(path)
    except OSError:
        return None  # not on this machine (a downloaded quant): the card gives its hash
    if not stat.S_ISREG(st.st_mode):
        warnings.append(f"The manifests name {shown} as the importance matrix; it is not a regular file, so it "
                        "was not published." + hint)
        return None
    if not rec.get("sha256"):
        warnings.append(f"The manifests name {shown} as the importance matrix but record no sha256 for it, so it "
                        "was not published." + hint)
        return None
    if sha256_file(path) != rec["sha256"]:
        warnings.append(f"The manifests name {shown} as the importance matrix, but it no longer matches the "
                        "sha256 they record, so it was not published." + hint)
        return None
    why = not_an_imatrix(path)
    if why:
        warnings.append(f"The manifests name {shown} as the importance matrix, but it is not one ({why}), so it "
                        "was not published.")
        return None
    return path


def quant_file(p: Path, m: dict[str, Any] | None, model: str, params: int, ev: dict[str, Any] | None = None,
               lad: dict[str, Any] | None = None, agr: dict[str, Any] | None = None,
               mc: dict[str, Any] | None = None, name: str | None = None) -> QuantFile:
    """One quant as published: its hub name, its real hash (checked against its manifest), its figures."""
    qtype = _type_of(p, m)
    sha = sha256_file(p)
    recorded = (m or {}).get("output", {}).get("sha256")
    if recorded and recorded != sha:
        raise InputError(f"{p} changed after it was quantized (sha256 {sha[:12]}…, its manifest says "
                         f"{recorded[:12]}…): quantize it again, or remove the stale manifest.")
    qf = QuantFile(p, name or f"{model}-{qtype}.gguf", qtype, p.stat().st_size, sha, m)
    qf.figures = _figures(qf, params, ev, lad, agr, mc)
    return qf


def _base_path(base: Path | None, manifests: Sequence[dict[str, Any] | None], warnings: list[str]) -> Path | None:
    """The base: the one named, else the one the manifests record when it is there with the recorded size
    (its metadata names the files and fills the card)."""
    if base is not None:
        return Path(base)
    rec = next((m["input"] for m in manifests if m and m.get("input") and m["input"].get("path")), None)
    if rec is None:
        return None
    p = Path(str(rec["path"]))
    try:
        st = os.stat(p)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (rec.get("bytes") and st.st_size != rec["bytes"]):
        warnings.append(f"The manifests name {one_line(p, 200)} as the base, but it is not the file they record "
                        "(size), so its metadata was not used. Give the base with --base.")
        return None
    return p


def _mmproj(mmproj: Path | None, base: Path | None, sources: dict[str, str], warnings: list[str]) -> Path | None:
    """The vision projector: the one named, else the one mmproj*.gguf beside the base the user named."""
    if mmproj is not None:
        p = regular_file(Path(mmproj), "vision projector")
        sources[str(p)] = "the vision projector you named (--mmproj)"
    elif base is not None:
        found = [f for f in sorted(Path(base).parent.glob("mmproj*.gguf")) if f.is_file()]
        if len(found) != 1:
            return None
        p = found[0]
        warnings.append(f"Included the vision projector {one_line(p.name, 120)} found beside the base.")
        sources[str(p)] = "the vision projector found beside the base you named"
    else:
        return None
    with open(p, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise InputError(f"The vision projector {p} is not a GGUF file. Give the mmproj*.gguf of the base.")
    return p


def gather_facts(quants: Sequence[Path], *, base: Path | None = None, imatrix: Path | None = None,
                 mmproj: Path | None = None, calibration: Path | None = None, dataset_log: Path | None = None,
                 eval_json: Path | None = None, ladder: Path | None = None, agree: Path | None = None,
                 mcq: Path | None = None, cancel: CancelToken | None = None) -> PublishFacts:
    """Everything the card and the report say, read from files; refuses quants of different bases."""
    cancel = cancel or CancelToken()
    if not quants:
        raise InputError("Name at least one quantized GGUF to publish.")
    warnings: list[str] = []
    paths = [regular_file(Path(q), "quantized model") for q in quants]
    if base is not None:
        regular_file(Path(base), "base model")
    manifests = [_manifest_of(p) for p in paths]
    base_shas = {m["input"]["sha256"]: p for p, m in zip(paths, manifests, strict=True)
                 if m and (m.get("input") or {}).get("sha256")}
    if len(base_shas) > 1:
        (s1, p1), (s2, p2) = list(base_shas.items())[:2]
        raise InputError(f"{p1.name} and {p2.name} were quantized from different base models (sha256 "
                         f"{s1[:12]}… and {s2[:12]}…): one folder holds the quants of one base. Publish them "
                         "into separate folders.")
    base_sha = next(iter(base_shas), None)
    if base is not None:
        cancel.check()
        sha = sha256_file(Path(base))
        if base_sha and sha != base_sha:
            raise InputError(f"The base {base} (sha256 {sha[:12]}…) is not the model "
                             f"{next(iter(base_shas.values())).name} was quantized from ({base_sha[:12]}…).")
        base_sha = sha
    for p, m in zip(paths, manifests, strict=True):
        if m is None:
            warnings.append(f"{p.name} has no manifest ({p.name}.manifest.json): its base and settings are "
                            "not on record.")
    base_path = _base_path(base, manifests, warnings)
    meta = gguf_metadata(base_path) if base_path else gguf_metadata(paths[0])
    name = meta.get("general.name") or meta.get("general.basename")
    model = slug(str(name)) if name else slug((base_path or paths[0]).stem.rsplit("-", 1)[0])
    base_info = {"path": str(base_path) if base_path else None, "file": base_path.name if base_path else None,
                 "sha256": base_sha, "name": name, "license": meta.get("general.license"),
                 "license_name": meta.get("general.license.name"), "license_link": meta.get("general.license.link"),
                 "description": meta.get("general.description"), "architecture": meta.get("general.architecture"),
                 "organization": meta.get("general.organization"), "repo_url": meta.get("general.repo_url"),
                 "base_model": meta.get("general.base_model.0.repo_url") or meta.get("general.base_model.0.name"),
                 "parameters": meta["_params"], "bytes": base_path.stat().st_size if base_path else None,
                 "has_chat_template": "tokenizer.chat_template" in meta}
    sources = {str(p): "a quant you named" for p in paths}
    mmproj = _mmproj(mmproj, base, sources, warnings)
    cancel.check()
    im_info = _imatrix_info(imatrix, manifests, sources, warnings)
    ev, lad, agr, mc = (read_json(eval_json, "eval"), read_json(ladder, "ladder"), read_json(agree, "agreement"),
                        read_json(mcq, "multiple-choice"))
    qfiles: list[QuantFile] = []
    for p, m in zip(paths, manifests, strict=True):
        cancel.check()
        qfiles.append(quant_file(p, m, model, int(base_info["parameters"]), ev, lad, agr, mc))
    names = [q.name for q in qfiles]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InputError(f"Two of the files would both be published as {dup}: publish one quant per type.")
    versions = {"medcal": __version__}
    with contextlib.suppress(Exception):
        import llama_cpp

        versions["llama_cpp_python"] = str(llama_cpp.__version__)
    rec_v = next((m.get("versions") for m in manifests if m and m.get("versions")), None)
    if rec_v:
        versions["quantized_with"] = one_line(", ".join(f"{k} {v}" for k, v in rec_v.items()), 500)
    calib = _calibration(Path(calibration) if calibration else None, Path(dataset_log) if dataset_log else None,
                         [m for m in manifests if m])
    if calib and calib.get("path"):
        sources[calib["path"]] = "the calibration text you named (--calibration)"
    if calib and calib.get("log"):
        sources[calib["log"]] = ("the dataset log you named (--dataset-log)" if dataset_log else
                                 "the dataset log beside the calibration text you named")
    return PublishFacts(model, base_info, qfiles, im_info, calib, mmproj, ev, lad, agr, mc, versions, warnings,
                        sources)
