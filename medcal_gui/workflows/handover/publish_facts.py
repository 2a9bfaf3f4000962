"""What is known about a set of quants of one base, read from files: their manifests, the base's GGUF
metadata (name, licence, description), the imatrix, the calibration set's log and the optional eval /
ladder / behaviour-check JSON files. Shared by `medcal publish` (the folder and its model card) and
`medcal report` (the printable governance report). Refuses quants of different bases.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui import __version__
from medcal_gui.core.errors import InputError
from medcal_gui.core.fsutil import sha256_file
from medcal_gui.core.jobs import CancelToken

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

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
        opts = (self.manifest or {}).get("options") or {}
        extra = ""
        if opts.get("output_tensor_type"):
            extra += f" --output-tensor-type {opts['output_tensor_type']}"
        if opts.get("token_embedding_type"):
            extra += f" --token-embedding-type {opts['token_embedding_type']}"
        if opts.get("pure"):
            extra += " --pure"
        im = f" --imatrix {imatrix_name}" if imatrix_name and (self.manifest or {}).get("imatrix") else ""
        return [f"medcal quantize --model {base_name}{im} --type {self.qtype}{extra} -o {self.name}",
                f"llama-quantize{im}{extra} {base_name} {self.name} {self.qtype}"]


@dataclass
class PublishFacts:
    model_name: str
    base: dict[str, Any]  # path, name, sha256, license, description, architecture, parameters, bytes
    quants: list[QuantFile]
    imatrix: dict[str, Any] | None
    calibration: dict[str, Any] | None  # the dataset log's summary and the text's hash (never the text)
    mmproj: Path | None
    eval: dict[str, Any] | None
    ladder: dict[str, Any] | None
    agree: dict[str, Any] | None
    mcq: dict[str, Any] | None
    versions: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "base": self.base,
                "quants": [{"source": str(q.source), "name": q.name, "type": q.qtype, "bytes": q.bytes,
                            "sha256": q.sha256, "figures": q.figures} for q in self.quants],
                "imatrix": self.imatrix, "calibration": self.calibration,
                "mmproj": str(self.mmproj) if self.mmproj else None, "versions": self.versions,
                "warnings": self.warnings}


def read_json(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"The {what} file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"The {what} file {path} is not readable JSON ({exc}). Pass the file medcal wrote "
                         "with --json.") from None
    if not isinstance(doc, dict):
        raise InputError(f"The {what} file {path} does not hold a JSON object.")
    return doc


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The general.* strings and numbers of a GGUF (name, license, description, ...), and its file type."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:
        raise InputError(f"{path} is not a readable GGUF file ({exc}).") from None
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


def slug(name: str) -> str:
    s = _UNSAFE.sub("-", name.strip()).strip("-.")
    return s or "model"


def _type_of(path: Path, manifest: dict[str, Any] | None) -> str:
    if manifest and isinstance(manifest.get("type"), dict) and manifest["type"].get("name"):
        return str(manifest["type"]["name"])
    from medcal_gui.modelfile.model_info import inspect_model

    return inspect_model(path).file_type


def _manifest_of(q: Path) -> dict[str, Any] | None:
    m = q.with_name(q.name + ".manifest.json")
    return read_json(m, "quantize manifest") if m.is_file() else None


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
        if not calibration.is_file():
            raise InputError(f"The calibration text {calibration} does not exist.")
        out.update({"file": calibration.name, "path": str(calibration), "sha256": sha256_file(calibration),
                    "bytes": calibration.stat().st_size})
    if "sha256" not in out and written.get("medcal.calibration.sha256"):
        out["sha256"] = written["medcal.calibration.sha256"]
    return out or None


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


def gather_facts(quants: Sequence[Path], *, base: Path | None = None, imatrix: Path | None = None,
                 mmproj: Path | None = None, calibration: Path | None = None, dataset_log: Path | None = None,
                 eval_json: Path | None = None, ladder: Path | None = None, agree: Path | None = None,
                 mcq: Path | None = None, cancel: CancelToken | None = None) -> PublishFacts:
    """Everything the card and the report say, read from files; refuses quants of different bases."""
    cancel = cancel or CancelToken()
    if not quants:
        raise InputError("Name at least one quantized GGUF to publish.")
    warnings: list[str] = []
    paths = [Path(q) for q in quants]
    for p in paths + [x for x in (base, imatrix, mmproj) if x is not None]:
        if not Path(p).is_file():
            raise InputError(f"The file {p} does not exist.")
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
    base_path = Path(base) if base else None
    if base_path is None:
        recorded = next((m["input"].get("path") for m in manifests if m and m.get("input")), None)
        if recorded and Path(recorded).is_file():
            base_path = Path(recorded)
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
    if mmproj is None and base_path is not None:
        found = sorted(base_path.parent.glob("mmproj*.gguf"))
        if len(found) == 1:
            mmproj = found[0]
            warnings.append(f"Included the vision projector {mmproj.name} found beside the base.")
    if imatrix is None:
        rec = next((m["imatrix"].get("path") for m in manifests if m and m.get("imatrix")), None)
        if rec and Path(rec).is_file():
            imatrix = Path(rec)
    im_info: dict[str, Any] | None = None
    if imatrix is not None:
        rec_im: dict[str, Any] = next((m["imatrix"] for m in manifests if m and m.get("imatrix")), {})
        im_info = {"file": Path(imatrix).name, "path": str(imatrix), "sha256": sha256_file(Path(imatrix)),
                   **{k: rec_im.get(k) for k in ("entries", "chunk_count", "chunk_size")},
                   # file names only: a folder path can name a person or a ward
                   "datasets": [Path(str(x)).name for x in rec_im.get("datasets") or []]}
        if rec_im.get("sha256") and rec_im["sha256"] != im_info["sha256"]:
            raise InputError(f"The importance matrix {imatrix} is not the one the quants were made with "
                             f"(sha256 {im_info['sha256'][:12]}…, manifest says {rec_im['sha256'][:12]}…).")
        if im_info.get("chunk_count") and im_info.get("chunk_size"):
            im_info["tokens"] = int(im_info["chunk_count"]) * int(im_info["chunk_size"])
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
        versions["quantized_with"] = ", ".join(f"{k} {v}" for k, v in rec_v.items())
    return PublishFacts(model, base_info, qfiles, im_info,
                        _calibration(Path(calibration) if calibration else None,
                                     Path(dataset_log) if dataset_log else None, [m for m in manifests if m]),
                        Path(mmproj) if mmproj else None, ev, lad, agr, mc, versions, warnings)
