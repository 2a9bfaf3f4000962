"""The quantized file's sha256 is computed while llama.cpp writes it: the header predicted from the input and a
dry run is llama.cpp's header byte for byte (checked on real quantizations), the digest is the file's, and a
prediction that does not hold falls back to hashing the file."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.core.jobs import CancelToken, no_progress
from medcal_gui.quantize import quantize as q
from medcal_gui.quantize.output_hash import OutputHash, predict_meta, tensor_plan
from medcal_gui.quantize.quantize_child import QuantizeJob, run_quantize
from medcal_gui.quantize.quantize_process import LogWatch, run_child
from medcal_gui.quantize.tensor_types import parse_tensor_type


@pytest.fixture(scope="module")
def imatrix_file(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imat") / "tiny.imatrix.gguf"
    compute_imatrix(tiny_model, [sample_file], n_ctx=128, n_chunks=4, out=out)
    return out


CASES: dict[str, dict[str, Any]] = {
    "q8_0": {"qtype": "Q8_0"},
    "q4_k_m-imatrix-provenance": {"qtype": "Q4_K_M", "imatrix": True, "provenance": {"calibration.variant": "v1"}},
    "rules-and-pruned-layer": {"qtype": "Q4_K_M", "tensor_types": [parse_tensor_type("attn_v=q8_0")],
                               "prune_layers": [1]},
    "pure-with-output-types": {"qtype": "Q6_K", "pure": True, "output_tensor_type": "q8_0",
                               "token_embedding_type": "q4_0"},
}


def _dry_lines(job: QuantizeJob) -> list[str]:
    lines: list[str] = []
    assert run_quantize(dataclasses.replace(job, dry_run=True), lambda _lv, line: lines.append(line)) == 0
    return lines


@pytest.mark.parametrize("case", list(CASES))
def test_the_predicted_header_is_llamas_own(case: str, tiny_model: Path, imatrix_file: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The job quantize_model hands the child, predicted from a dry run, against the file llama.cpp wrote."""
    jobs: list[QuantizeJob] = []
    real_run_child = q.run_child

    def keep_job(job: QuantizeJob, *args: Any, **kwargs: Any) -> int:
        jobs.append(dataclasses.replace(job))
        return real_run_child(job, *args, **kwargs)

    monkeypatch.setattr(q, "run_child", keep_job)
    opts = dict(CASES[case])
    qtype = opts.pop("qtype")
    if opts.pop("imatrix", False):
        opts["imatrix"] = imatrix_file
    res = q.quantize_model(tiny_model, tmp_path / "out.gguf", qtype, threads=2, **opts)
    job = jobs[0]
    meta, total = predict_meta(tiny_model, tensor_plan(_dry_lines(job)), job.ftype, job.kv_overrides,
                               job.prune_layers)
    data = (tmp_path / "out.gguf").read_bytes()
    assert (meta, total) == (data[:len(meta)], len(data))
    assert res.sha256 == hashlib.sha256(data).hexdigest()


def _quantize_following(tiny_model: Path, out: Path, job: QuantizeJob, hash_job: QuantizeJob) -> str | None:
    out.write_bytes(b"")  # as atomic_path leaves it for llama.cpp
    holder: list[OutputHash] = []
    cancel = CancelToken()
    rc = run_child(job, LogWatch(no_progress, "quantize"), cancel,
                   on_sent=lambda: holder.append(OutputHash(hash_job, out, cancel)))
    assert rc == 0
    try:
        return holder[0].finish()
    finally:
        holder[0].stop()


def test_the_followed_digest_is_the_files_and_a_wrong_prediction_gives_none(tiny_model: Path,
                                                                            tmp_path: Path) -> None:
    job = QuantizeJob(model=str(tiny_model), out=str(tmp_path / "a.gguf"), ftype=15, nthread=2,
                      allow_requantize=False, pure=False, dry_run=False, output_tensor_type=None,
                      token_embedding_type=None, imatrix=None, kv_overrides=[("medcal.version", "t")])
    digest = _quantize_following(tiny_model, tmp_path / "a.gguf", job, job)
    assert digest == hashlib.sha256((tmp_path / "a.gguf").read_bytes()).hexdigest()
    # a prediction made for other metadata (one more key): llama.cpp's header differs, so no digest
    other = dataclasses.replace(job, kv_overrides=[("medcal.version", "t"), ("medcal.extra", 1)])
    b = tmp_path / "b.gguf"
    assert _quantize_following(tiny_model, b, dataclasses.replace(job, out=str(b)), other) is None


def test_stop_ends_the_follower_at_once(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.gguf"
    out.write_bytes(b"")  # nothing will be written: the follower waits for data
    job = QuantizeJob(model=str(tiny_model), out=str(out), ftype=7, nthread=1, allow_requantize=False, pure=False,
                      dry_run=False, output_tensor_type=None, token_embedding_type=None, imatrix=None,
                      kv_overrides=[])
    h = OutputHash(job, out, CancelToken())
    h.stop()
    assert not h._thread.is_alive()
