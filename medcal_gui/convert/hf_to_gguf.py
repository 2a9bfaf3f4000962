"""Convert a Hugging Face Gemma 3 / MedGemma download to a GGUF llama.cpp loads as `gemma3`.

Reads config.json, the safetensors shards, the tokenizer files and the chat template; writes the language
model (Gemma3ForCausalLM, or the language model of Gemma3ForConditionalGeneration) and, optionally, the
vision tower as llama.cpp's mmproj file. Run time needs only numpy, safetensors and gguf (no torch): tensors
are streamed a slice at a time, so memory stays small whatever the model's size. Output goes through a
temporary file (nothing partial on failure or cancel), followed by `OUT.sha256` and `OUT.manifest.json`
in the shape `medcal quantize` writes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gguf
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from medcal_gui.budget.limits import check, convert_needs
from medcal_gui.convert.card import README, add_general_metadata
from medcal_gui.convert.config import Gemma3Spec, UnsupportedModelError, read_spec
from medcal_gui.convert.folder import check_inside
from medcal_gui.convert.input_hash import InputHasher
from medcal_gui.convert.safetensors_io import INDEX_NAME, SafetensorsCheckpoint
from medcal_gui.convert.tensors import TensorPlan, in_file_order, plan_language_model, write_gguf
from medcal_gui.convert.vocab import SPECIAL_TYPES, Vocab, load_vocab, tokenizer_files
from medcal_gui.core.errors import InputError, OutputError
from medcal_gui.core.fsutil import atomic_path, check_free_space, check_output_path, ensure_dir, write_text_atomic
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.units import MiB
from medcal_gui.llama.versions import manifest_versions

log = logging.getLogger(__name__)

OUTTYPES: dict[str, tuple[GGMLQuantizationType, LlamaFileType]] = {
    "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
}
STAGE = "convert"


@dataclass
class ConvertResult:
    hf_dir: Path
    out: Path
    outtype: str
    architecture: str
    tensors: int
    n_vocab: int
    n_layer: int
    input_bytes: int
    output_bytes: int
    seconds: float
    chat_template: bool
    sha256: str | None = None
    sha256_file: Path | None = None
    manifest: Path | None = None
    mmproj: Path | None = None
    mmproj_tensors: int = 0
    mmproj_bytes: int = 0
    mmproj_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("hf_dir", "out", "sha256_file", "manifest", "mmproj"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


def is_hf_model_dir(path: Path | str) -> bool:
    """Whether `path` looks like a Hugging Face model folder (config.json plus safetensors weights).

    Cheap: no file is parsed. `convert_hf` says in plain words what is wrong with a folder that passes this.
    """
    p = Path(path)
    try:
        if not p.is_dir() or not (p / "config.json").is_file():
            return False
        return (p / INDEX_NAME).is_file() or any(p.glob("*.safetensors"))
    except OSError:
        return False


def _parse_outtype(outtype: str) -> tuple[GGMLQuantizationType, LlamaFileType]:
    key = str(outtype).strip().lower()
    if key not in OUTTYPES:
        raise InputError(f"Unknown output type {outtype!r}: choose one of {', '.join(OUTTYPES)}.")
    return OUTTYPES[key]


def _add_lm_metadata(w: GGUFWriter, spec: Gemma3Spec, vocab: Vocab, ftype: LlamaFileType, n_params: int) -> None:
    t = spec.text
    w.add_type(gguf.GGUFType.MODEL)
    add_general_metadata(w, spec.card, n_params)
    w.add_block_count(spec.n_layer)
    w.add_context_length(int(t["max_position_embeddings"]))
    w.add_embedding_length(int(t["hidden_size"]))
    w.add_feed_forward_length(int(t["intermediate_size"]))
    w.add_head_count(int(t["num_attention_heads"]))
    w.add_head_count_kv(int(t["num_key_value_heads"]))
    w.add_layer_norm_rms_eps(float(t["rms_norm_eps"]))
    w.add_key_length(int(t["head_dim"]))
    w.add_value_length(int(t["head_dim"]))
    w.add_rope_freq_base(spec.rope.global_theta)
    w.add_rope_freq_base_swa(spec.rope.local_theta)
    if spec.rope.scaling_type == "linear" and spec.rope.scaling_factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(spec.rope.scaling_factor)
    if t.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(float(t["final_logit_softcapping"]))
    if spec.write_sliding_window:
        w.add_sliding_window(int(t["sliding_window"]))
        if spec.swa_layers != spec.llama_default_pattern():
            # llama.cpp assumes every 6th layer global; say so per layer where the checkpoint differs
            w.add_sliding_window_pattern(spec.swa_layers)
    w.add_file_type(int(ftype))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(vocab.tokens)
    w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    for typ in SPECIAL_TYPES:
        if typ in vocab.special_ids and hasattr(w, f"add_{typ}_token_id"):
            getattr(w, f"add_{typ}_token_id")(vocab.special_ids[typ])
    for typ, flag in vocab.add_special.items():
        if hasattr(w, f"add_add_{typ}_token"):
            getattr(w, f"add_add_{typ}_token")(flag)
    w.add_add_space_prefix(False)
    if vocab.chat_template is not None:
        w.add_chat_template(vocab.chat_template)


def _metadata_bytes(vocab: Vocab) -> int:
    return sum(len(t.encode("utf-8")) + 16 for t in vocab.tokens) + 1 * MiB


def _input_files(hf_dir: Path, ckpt: SafetensorsCheckpoint) -> list[Path]:
    """Every file the conversion reads, each inside the folder (checked before the hashing thread opens one)."""
    files = [hf_dir / "config.json"] + tokenizer_files(hf_dir)
    for extra in (INDEX_NAME, "preprocessor_config.json", "processor_config.json", README):
        if (hf_dir / extra).is_file():
            files.append(hf_dir / extra)
    return sorted({check_inside(hf_dir, f, "input file") for f in files} | set(ckpt.shards))


def _versions() -> dict[str, str]:
    out = {**manifest_versions(), "gguf": getattr(gguf, "__version__", "unknown")}
    with contextlib.suppress(Exception):
        import safetensors

        out["safetensors"] = str(safetensors.__version__)
    return out


def convert_hf(hf_dir: Path | str, out: Path | str, outtype: str = "f16", mmproj: Path | str | None = None, *,
               progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
               hash_inputs: bool = True) -> ConvertResult:
    """Convert the Hugging Face Gemma 3 folder `hf_dir` to the GGUF `out` (and the vision tower to `mmproj`).

    `outtype` is f16 (default), bf16 or f32 for the matrices; norms and other 1-D tensors are always F32.
    Raises a MedcalError subclass, with nothing written, for a folder that is not a model, an unsupported
    architecture, missing or truncated shards, or a tokenizer without Gemma's turn tokens.
    """
    cancel = cancel or CancelToken()
    t0 = time.monotonic()
    hf_dir, out = Path(hf_dir), Path(out)
    mm_path = Path(mmproj) if mmproj is not None else None
    qtype, ftype = _parse_outtype(outtype)
    progress(Progress(STAGE, 0, None, message="reading the model folder"))

    # config.json's counts and shapes are typed and bounded (read_spec), then checked against the shards'
    # headers (plan_language_model), before anything is built from them: the vocabulary comes after
    spec = read_spec(hf_dir)
    ckpt = SafetensorsCheckpoint(hf_dir)
    n_vocab = int(spec.text["vocab_size"])
    plans = in_file_order(plan_language_model(spec, ckpt, n_vocab, qtype), ckpt)
    inputs = _input_files(hf_dir, ckpt)
    # an output that is a folder, a FIFO, a device or an input is refused before any work, sidecars included
    check_output_path(out, inputs, sidecars=(".sha256", ".manifest.json"), what="converted model")
    if mm_path is not None:
        check_output_path(mm_path, inputs, sidecars=(".sha256",), what="mmproj")
        if mm_path.resolve() == out.resolve():
            raise OutputError(f"The model and the mmproj would both be written to {out}: give the mmproj its own name.")
    with contextlib.ExitStack() as stack:
        hasher: InputHasher | None = None
        if hash_inputs:  # from here on, alongside the parsing and the conversion (convert/input_hash.py)
            hasher = InputHasher(inputs, hf_dir, cancel)
            stack.callback(hasher.stop)
        vocab = load_vocab(hf_dir, n_vocab)
        if len(vocab) != n_vocab:  # load_vocab pads or cuts to vocab_size: the plans' row counts hold
            raise AssertionError(f"vocabulary of {len(vocab)} tokens, planned {n_vocab}")
        mm_plans: list[TensorPlan] = []
        mm_writer: GGUFWriter | None = None
        if mm_path is not None:
            if not spec.multimodal or spec.vision is None:
                raise UnsupportedModelError(f"The model in {hf_dir} is a {spec.architecture} with no vision tower, so "
                                            "there is no mmproj to write. Leave out --mmproj.")
            from medcal_gui.convert.mmproj import plan_mmproj

            mm_writer, mm_plans = plan_mmproj(spec, ckpt, ftype)
            mm_plans = in_file_order(mm_plans, ckpt)
        warnings = list(spec.warnings) + list(vocab.warnings)

        ensure_dir(out.parent)
        need = sum(p.nbytes for p in plans) + _metadata_bytes(vocab)
        if mm_path is not None:
            ensure_dir(mm_path.parent)
            mm_need = sum(p.nbytes for p in mm_plans) + MiB
            if mm_path.parent.resolve() == out.parent.resolve():
                need += mm_need
            else:
                check_free_space(mm_path.parent, mm_need, f"the mmproj {mm_path.name}")
        check(convert_needs(out, need))
        check_free_space(out.parent, need, f"the converted model {out.name}")

        input_sha: str | None = None
        input_rows: list[dict[str, Any]] = []
        versions = _versions()  # before the writes: under 8 GB of writeback, even reading a .pyc waits
        cancel.check()

        n_params = sum(p.n_elements for p in plans)
        writer = GGUFWriter(None, "gemma3")
        _add_lm_metadata(writer, spec, vocab, ftype, n_params)
        t_w = time.monotonic()
        mm_sha: str | None = None
        mm_bytes = 0
        tmp = stack.enter_context(atomic_path(out))
        out_sha = write_gguf(tmp, writer, plans, stage=STAGE, progress=progress, cancel=cancel)
        out_bytes = tmp.stat().st_size
        if mm_path is not None and mm_writer is not None:
            mm_tmp = stack.enter_context(atomic_path(mm_path))
            mm_sha = write_gguf(mm_tmp, mm_writer, mm_plans, stage="convert mmproj", progress=progress,
                                cancel=cancel)
            mm_bytes = mm_tmp.stat().st_size
        if hasher is not None:
            input_sha, input_rows = hasher.result(progress)
        cancel.check()
    write_s = time.monotonic() - t_w

    sha_file = out.with_name(out.name + ".sha256")
    write_text_atomic(sha_file, f"{out_sha}  {out.name}\n")
    if mm_path is not None and mm_sha is not None:
        write_text_atomic(mm_path.with_name(mm_path.name + ".sha256"), f"{mm_sha}  {mm_path.name}\n")
    manifest = out.with_name(out.name + ".manifest.json")
    res = ConvertResult(
        hf_dir=hf_dir, out=out, outtype=outtype.lower(), architecture=spec.architecture, tensors=len(plans),
        n_vocab=len(vocab), n_layer=spec.n_layer, input_bytes=ckpt.total_bytes, output_bytes=out_bytes,
        seconds=time.monotonic() - t0, chat_template=vocab.chat_template is not None, sha256=out_sha,
        sha256_file=sha_file, manifest=manifest, mmproj=mm_path, mmproj_tensors=len(mm_plans),
        mmproj_bytes=mm_bytes, mmproj_sha256=mm_sha, warnings=warnings,
    )
    doc = {
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "input": {"path": str(hf_dir.resolve()), "sha256": input_sha, "bytes": sum(f.stat().st_size for f in inputs),
                  "architecture": spec.architecture, "files": input_rows},
        "output": {"path": str(out.resolve()), "sha256": out_sha, "bytes": out_bytes},
        "mmproj": None if mm_path is None else {"path": str(mm_path.resolve()), "sha256": mm_sha,
                                                "bytes": mm_bytes, "tensors": len(mm_plans)},
        "type": {"name": outtype.upper(), "ftype": int(ftype)},
        "imatrix": None,
        "options": {"outtype": outtype.lower(), "mmproj": str(mm_path) if mm_path else None,
                    "hash_inputs": hash_inputs},
        "metadata_written": {"general.architecture": "gemma3", "gemma3.block_count": spec.n_layer,
                             "tokenizer.ggml.tokens": len(vocab), "tokenizer.chat_template": res.chat_template,
                             **{f"tokenizer.ggml.{k}_token_id": v for k, v in vocab.special_ids.items()}},
        "timings_s": {"convert": round(write_s, 3), "total": round(res.seconds, 3)},
        "tensors": len(plans),
        "warnings": warnings,
    }
    write_text_atomic(manifest, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    for w_ in warnings:
        log.warning("%s", w_)
    return res
