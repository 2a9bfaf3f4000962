"""Evaluation against a base: real llama.cpp on the tiny model, values asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medcal_gui.core.errors import Cancelled, InputError, MedcalError
from medcal_gui.core.file_hashes import file_sha256
from medcal_gui.core.fsutil import TMP_PREFIX
from medcal_gui.core.jobs import CancelToken, Progress
from medcal_gui.evaluate.eval_cache import BaseKey, eval_cache_dir, text_sha256
from medcal_gui.evaluate.eval_math import base_rows, exact_kld, model_rows
from medcal_gui.evaluate.evaluate import EvalModel, evaluate, read_text
from medcal_gui.llama import ggml_ctypes as gc

N_CTX = 128
N_CHUNKS = 3


@pytest.fixture(scope="session")
def tiny_q4(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tinyq") / "tiny-q4_0.gguf"
    qa = gc.quantize_params(ftype=2, nthread=2, allow_requantize=False, pure=False, dry_run=False,
                            output_tensor_type=None, token_embedding_type=None, imatrix=None, kv_overrides=[])
    assert gc.model_quantize(tiny_model, out, qa) == 0
    return out


@pytest.fixture(scope="session")
def eval_text(sample_file: Path) -> str:
    return sample_file.read_text(encoding="utf-8")[:12000]


def test_model_against_itself_has_zero_kld_and_full_top_agreement(tiny_model: Path, eval_text: str) -> None:
    r = evaluate(tiny_model, [tiny_model], eval_text, n_ctx=N_CTX, n_chunks=N_CHUNKS)
    m = r.models[0]
    assert m.tokens_scored == N_CHUNKS * (N_CTX - 1 - N_CTX // 2) == r.tokens_scored
    assert abs(m.kld_mean) < 1e-6 and abs(m.kld_max) < 1e-6
    assert m.same_top_pct == 100.0
    assert m.ppl_ratio == pytest.approx(1.0, abs=1e-9)
    assert m.rms_dp_pct < 1e-6
    assert m.ppl_base == pytest.approx(m.ppl_model)
    assert 1.0 < m.ppl_base < 5000


def test_quant_kld_is_positive_and_finite(tiny_model: Path, tiny_q4: Path, eval_text: str) -> None:
    r = evaluate(tiny_model, [tiny_q4], eval_text, n_ctx=N_CTX, n_chunks=N_CHUNKS)
    m = r.models[0]
    assert np.isfinite(m.kld_values).all()
    assert (m.kld_values >= -1e-7).all()
    assert 0 < m.kld_mean < 1 and np.isfinite(m.kld_mean)
    assert m.kld_median <= m.kld_p99 <= m.kld_max
    assert 50 < m.same_top_pct <= 100
    assert m.rms_dp_pct > 0
    assert m.ppl_ratio == pytest.approx(m.ppl_model / m.ppl_base)
    d = m.to_json()
    for k in ("ppl_base", "ppl_model", "ppl_ratio", "kld_mean", "kld_median", "kld_p99", "kld_max",
              "same_top_pct", "rms_dp_pct", "tokens_scored"):
        assert isinstance(d[k], (int, float)), k
    json.dumps(r.to_json())


def test_second_eval_reuses_the_cached_base_pass(tiny_model: Path, tiny_q4: Path, eval_text: str) -> None:
    first = evaluate(tiny_model, [tiny_q4], eval_text, n_ctx=N_CTX, n_chunks=2, use_cache=False)
    assert not first.base_from_cache and first.base_seconds > 0
    meta = first.cache_dir / "meta.json" if first.cache_dir else None
    assert meta is not None and meta.is_file()
    second = evaluate(tiny_model, [tiny_q4, tiny_model], eval_text, n_ctx=N_CTX, n_chunks=2)
    assert second.base_from_cache and second.base_seconds == 0
    assert second.cache_dir == first.cache_dir
    assert second.models[0].kld_mean == first.models[0].kld_mean
    assert second.models[1].kld_mean == 0.0
    # a different context size is a different base pass (a different cache entry)
    third = evaluate(tiny_model, [tiny_q4], eval_text, n_ctx=64, n_chunks=2)
    assert third.cache_dir != first.cache_dir


def _chunk_logits(path: Path, tokens: np.ndarray) -> np.ndarray:
    with EvalModel(path, N_CTX, 2, CancelToken()) as em:
        return em.decode(tokens[:N_CTX], CancelToken()).copy()


def test_compact_base_rows_match_the_exact_full_vocabulary_kld(tiny_model: Path, tiny_q4: Path,
                                                               eval_text: str) -> None:
    with EvalModel(tiny_model, N_CTX, 2, CancelToken()) as em:
        tokens = em.tokenize(eval_text, True)
    targets = tokens[N_CTX // 2 + 1: N_CTX].astype(np.int64)
    lb, lq = _chunk_logits(tiny_model, tokens), _chunk_logits(tiny_q4, tokens)
    exact = exact_kld(lb, lq)
    assert exact.mean() > 1e-4  # a real difference to measure

    # default cutoff: the tiny model's flat distributions are kept whole, so the result is exact
    full = model_rows(lq, targets, base_rows(lb, targets))
    assert np.abs(full.kld - exact).max() < 1e-6

    # a cutoff that leaves a tail like Gemma's at 16 (~4e-4 of the mass): still within 1e-4 of exact
    rows = base_rows(lb, targets, cutoff=9.0)
    assert rows.tail.mean() > 1e-4 and rows.counts.mean() < lb.shape[1]
    approx = model_rows(lq, targets, rows)
    assert np.abs(approx.kld - exact).max() < 1e-4
    # harsher cutoffs: the tail bucket is a lower bound, short of exact by about tail mass x KLD
    for cutoff in (8.0, 7.5):
        rows = base_rows(lb, targets, cutoff=cutoff)
        approx = model_rows(lq, targets, rows)
        assert (approx.kld <= exact + 1e-7).all()
        assert (exact - approx.kld <= 3 * rows.tail * exact + 1e-7).all()
    # the other figures need no approximation at all
    assert np.array_equal(approx.nll, full.nll) and np.array_equal(approx.same_top, full.same_top)

    # and evaluate() reports the same per-token values for that chunk
    r = evaluate(tiny_model, [tiny_q4], eval_text, n_ctx=N_CTX, n_chunks=1)
    assert np.abs(r.models[0].kld_values - exact).max() < 1e-6


def test_cancel_during_the_base_pass_leaves_no_cache_entry(tiny_model: Path, eval_text: str) -> None:
    token = CancelToken()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.done >= 1 and p.unit == "chunks":
            token.cancel()

    text = eval_text + "\nA text variant no other test uses.\n"
    with pytest.raises(Cancelled):
        evaluate(tiny_model, [tiny_model], text, n_ctx=N_CTX, n_chunks=3, progress=progress, cancel=token)
    key = BaseKey(file_sha256(tiny_model), text_sha256(text), N_CTX, True, 3, 16.0)
    assert not (eval_cache_dir() / key.digest()).exists()
    assert not list(eval_cache_dir().glob(TMP_PREFIX + "*"))
    assert any(p.rate for p in seen)


def test_special_tokens_are_parsed_unless_told_not_to(tiny_model: Path) -> None:
    text = "<start_of_turn>user\nthe patient has chest pain<end_of_turn>\n" * 40
    a = evaluate(tiny_model, [tiny_model], text, n_ctx=64, n_chunks=1)
    b = evaluate(tiny_model, [tiny_model], text, n_ctx=64, n_chunks=1, parse_special=False)
    assert a.tokens_total < b.tokens_total
    assert a.cache_dir != b.cache_dir


def test_text_too_short_for_one_chunk_is_refused(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="one chunk needs"):
        evaluate(tiny_model, [tiny_model], "the patient", n_ctx=N_CTX, use_cache=False)
    with pytest.raises(InputError, match="does not exist"):
        read_text(Path("/nonexistent/held-out.txt"))


def test_eval_command_prints_json_and_writes_the_plot(tiny_model: Path, tiny_q4: Path, eval_text: str,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main

    text = tmp_path / "held.txt"
    text.write_text(eval_text, encoding="utf-8")
    png = tmp_path / "kld.svg"
    rc = main(["eval", "--base", str(tiny_model), "--model", str(tiny_q4), "--model", str(tiny_model),
               "--text", str(text), "--ctx", str(N_CTX), "--chunks", "2", "--json", "--plot", str(png)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in d["models"]] == [tiny_q4.name, tiny_model.name]
    assert d["models"][1]["kld_mean"] == 0.0 and d["models"][0]["kld_mean"] > 0
    assert d["tokens_scored"] == 2 * (N_CTX - 1 - N_CTX // 2)
    svg = png.read_text(encoding="utf-8")
    assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
    assert f"{tiny_q4.name} (mean " in svg and "identical to the base: KLD 0" in svg
    assert d["plot"] == str(png)


@pytest.mark.parametrize("target", ["base", "text", "folder", "png"])
def test_eval_plot_path_is_checked_before_the_work(tiny_model: Path, tiny_q4: Path, tmp_path: Path,
                                                    target: str, capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main

    text = tmp_path / "held.txt"
    text.write_text("the patient " * 400, encoding="utf-8")
    (tmp_path / "figs.svg").mkdir()
    plot = {"base": tiny_model, "text": text, "folder": tmp_path / "figs.svg", "png": tmp_path / "k.png"}[target]
    before = tiny_model.read_bytes() if target == "base" else text.read_bytes()
    rc = main(["eval", "--base", str(tiny_model), "--model", str(tiny_q4), "--text", str(text),
               "--ctx", str(N_CTX), "--plot", str(plot)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert {"base": "same file as the input", "text": "same file as the input", "folder": "is a folder",
            "png": "name it .svg"}[target] in err
    assert (tiny_model.read_bytes() if target == "base" else text.read_bytes()) == before
    assert "tokens scored" not in capsys.readouterr().out  # refused before the evaluation ran


def test_capped_rows_bound_the_exact_kld_from_both_sides(tiny_model: Path, tiny_q4: Path,
                                                         eval_text: str) -> None:
    """Keep only the 24 most likely entries per position: the reported KLD is a lower bound of the exact
    figure and the reported truncation bound covers the rest, row by row."""
    with EvalModel(tiny_model, N_CTX, 2, CancelToken()) as em:
        tokens = em.tokenize(eval_text, True)
    targets = tokens[N_CTX // 2 + 1: N_CTX].astype(np.int64)
    lb, lq = _chunk_logits(tiny_model, tokens), _chunk_logits(tiny_q4, tokens)
    exact = exact_kld(lb, lq)
    rows = base_rows(lb, targets, max_kept=24)
    assert rows.counts.max() == 24 and rows.ids.size == rows.counts.sum()  # bounded whatever the vocabulary
    assert rows.tail.mean() > 0.05  # a real truncation (the tiny model's distributions are flat)
    got = model_rows(lq, targets, rows)
    assert (got.kld <= exact + 1e-7).all()
    assert (exact <= got.kld + got.kld_bound + 1e-7).all()
    assert (got.kld_bound > 0).all()
    # uncapped, the tiny vocabulary is kept whole: exact, and a zero bound
    full = model_rows(lq, targets, base_rows(lb, targets))
    assert np.abs(full.kld - exact).max() < 1e-6 and full.kld_bound.max() == 0.0
    # the same model on both sides: exactly 0, whatever the cap
    self_rows = model_rows(lb, targets, rows)
    assert np.abs(self_rows.kld).max() < 1e-9


def test_cache_size_per_token_is_bounded_at_gemmas_vocabulary() -> None:
    from medcal_gui.evaluate.eval_math import MAX_KEPT, max_bytes_per_token

    assert max_bytes_per_token() <= 64 * 1024  # the bound, at any vocabulary (262 144 for Gemma 3)
    assert max_bytes_per_token() == 24 + 8 * MAX_KEPT


def test_eval_reports_the_truncation_bound_and_the_entry_stays_within_the_cap(
        tiny_model: Path, tiny_q4: Path, eval_text: str) -> None:
    from medcal_gui.evaluate.eval_math import max_bytes_per_token

    r = evaluate(tiny_model, [tiny_q4], eval_text, n_ctx=N_CTX, n_chunks=2, use_cache=False)
    m = r.models[0]
    assert m.kld_trunc_bound == 0.0  # the tiny vocabulary (512) fits under the cap whole
    assert "kld_trunc_bound" in m.to_json()
    assert r.cache_dir is not None
    data = (r.cache_dir / "ids.i32").stat().st_size + (r.cache_dir / "lps.f32").stat().st_size
    assert data <= r.tokens_scored * (max_bytes_per_token() - 24)


def test_a_killed_runs_temporary_folder_is_pruned_by_the_next(tiny_model: Path, eval_text: str,
                                                              tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    root = eval_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.glob(TMP_PREFIX + "*"))
    text = tmp_path / "long.txt"
    text.write_text(eval_text * 6, encoding="utf-8")
    code = ("import sys; from pathlib import Path; from medcal_gui.evaluate.evaluate import evaluate; "
            f"evaluate(Path(sys.argv[1]), [Path(sys.argv[1])], Path(sys.argv[2]), n_ctx={N_CTX}, threads=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tiny_model), str(text)], env=dict(os.environ))
    t0 = time.monotonic()
    while not (set(root.glob(TMP_PREFIX + "*")) - before):
        assert proc.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    orphans = set(root.glob(TMP_PREFIX + "*")) - before
    assert orphans and all(p.is_dir() for p in orphans)
    # the next base pass (any text) removes them; an entry being written by a live process would stay
    evaluate(tiny_model, [tiny_model], eval_text[:3000], n_ctx=64, n_chunks=1, use_cache=False)
    assert not (orphans & set(root.glob(TMP_PREFIX + "*")))


def test_cache_clear_command_empties_the_cache(tiny_model: Path, eval_text: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from medcal_gui.cli.main import main
    from medcal_gui.evaluate.eval_cache import cache_usage

    evaluate(tiny_model, [tiny_model], eval_text, n_ctx=64, n_chunks=1)
    used = cache_usage()
    assert used.entries >= 1 and used.bytes > 0
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"{used.entries} entr" in out and str(used.folder) in out
    assert main(["cache", "--clear"]) == 0
    assert "freed" in capsys.readouterr().out
    assert cache_usage().entries == 0 and not [p for p in eval_cache_dir().iterdir()
                                              if not p.name.startswith(TMP_PREFIX)]


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 256 KB file system (tmpfs), where this process may mount one (root on Linux); else skip."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_base_pass_that_cannot_fit_is_refused_before_it_starts(tiny_model: Path, eval_text: str,
                                                                 small_disk: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("MEDCAL_EVAL_CACHE", str(small_disk / "eval"))
    seen: list[Progress] = []
    # the limits check (budget/limits.py) refuses first; the cache's own check is the second line of defence
    with pytest.raises(MedcalError, match="(?s)(free disk|Not enough free space).*evaluation cache"):
        evaluate(tiny_model, [tiny_model], eval_text, n_ctx=N_CTX, n_chunks=3, use_cache=False,
                 progress=seen.append)
    assert not [p for p in seen if p.unit == "chunks" and p.done]  # no chunk was run
    left = [p.name for p in (small_disk / "eval").iterdir()] if (small_disk / "eval").exists() else []
    assert left == []  # no temporary folder: refused before the cache was touched
