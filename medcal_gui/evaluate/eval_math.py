"""The per-token arithmetic of a KL-divergence evaluation, vectorized with numpy, with no llama.cpp in sight.

What the base model leaves behind (`BaseRows`), and why it is compact yet (near) exact
----------------------------------------------------------------------------------------
KLD at one position is  sum_i p_b(i) * (log p_b(i) - log p_m(i))  over the whole vocabulary, so the base's
whole distribution takes part. llama-perplexity keeps it whole: 2 bytes per vocabulary entry (log-probs
quantized to uint16 between the row's maximum and maximum - 16), 512 KB per token for Gemma's 262 144
entries, 1.7 GB for a 3 300-token held-out text. And its sum then skips every entry whose base log-prob is
at most -16: those never reach the KLD.

medcal keeps, per scored position, the entries llama-perplexity sums over, S = {i : log p_b(i) > -cutoff}
(cutoff 16, as llama-perplexity), but at most the `MAX_KEPT` most likely of them (8 000), as (token id int32,
log-prob float32); plus the base's log-prob of the correct token, its top token, the probability mass r_b
left outside S, and `floor`: a log-prob no entry outside S exceeds. So an entry costs at most
24 + 8 x 8 000 bytes = 62.5 KB per scored token whatever the vocabulary: a flat distribution (a random-weight
model, where nearly every entry is above the cutoff) no longer fills the cache with the whole vocabulary
(2 MB a token at 4B before). For Gemma 3 270M on clinical text S holds ~7 000 entries on average and
r_b ~ 4e-4.

The model's side is computed from its full logits, so
    KLD = sum_{i in S} p_b(i) (log p_b(i) - log p_m(i))  +  T,   T = sum_{i not in S} p_b(i) log(p_b(i) / p_m(i))
and T is bounded on both sides with what is known. Below, by the log-sum inequality, by the bucket
B = r_b log(r_b / r_m) (r_m the model's mass outside S), which medcal adds. Above, since every p_b(i) outside
S is at most c = exp(floor) and they sum to r_b: T <= r_b (log c - min_i log p_m(i)). The reported KLD is the
lower bound; `kld_trunc_bound` (per token, and its mean in the results) says how far above it the exact
figure can be at worst. That worst case (the base's whole tail on the model's least likely tokens) is far
from what happens: on the demo model the exact mean KLD is 0.26 % above the reported one while the bound
is several times the KLD itself; it is a guarantee, not an estimate (bench/bench_eval_cache.py).
With the same model on both sides every term is computed identically and the KLD is exactly 0.
llama-perplexity drops the tail term altogether (and rounds log-probs to 2.4e-4); its figure differs from
medcal's by that term. The log-probs are float32 rather than rounded to 16 bits because a rounding error of
e in log p of the top token moves the KLD by about p*e, which would swamp the KLD of a near-lossless quant
(1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CUTOFF = 16.0  # nats below certainty, as llama-perplexity's `p_log_base > -16`
MAX_KEPT = 8000  # entries kept per scored position at most: the cache's bound per token (62.5 KB)
ROW_BYTES = 4 + 4 + 8 + 4 + 4  # tgt_lp, top, tail, counts, floor
ENTRY_BYTES = 4 + 4  # token id, log-prob


def max_bytes_per_token(max_kept: int = MAX_KEPT) -> int:
    """The most an evaluation cache entry stores per scored token, whatever the vocabulary."""
    return ROW_BYTES + ENTRY_BYTES * max_kept
# Rows processed at a time: about 8 MB of float32 logits, so the temporaries stay in cache.
_BLOCK_BYTES = 8 << 20


@dataclass
class BaseRows:
    """What the base pass keeps for `n` scored positions (see the module docstring)."""

    tgt_lp: np.ndarray  # float32 (n,): base log-prob of the correct next token
    top: np.ndarray  # int32 (n,): base's most likely token
    tail: np.ndarray  # float64 (n,): base probability mass outside the kept set
    counts: np.ndarray  # int32 (n,): entries kept per position
    ids: np.ndarray  # int32 (sum counts,): kept token ids, row after row
    lps: np.ndarray  # float32 (sum counts,): their base log-probs
    floor: np.ndarray  # float32 (n,): no base log-prob outside the kept set exceeds it

    @property
    def n(self) -> int:
        return int(self.tgt_lp.shape[0])


@dataclass
class ModelRows:
    """Per-position figures of a model against the base."""

    kld: np.ndarray  # float64 (n,): a lower bound of the exact KLD (exact when nothing was left out)
    nll: np.ndarray  # float64 (n,): -log p_model(correct token)
    nll_base: np.ndarray  # float64 (n,)
    same_top: np.ndarray  # bool (n,)
    p_diff: np.ndarray  # float32 (n,): p_model(correct) - p_base(correct)
    kld_bound: np.ndarray  # float64 (n,): the exact KLD is at most kld + kld_bound


def _block_rows(n_vocab: int) -> int:
    return max(1, _BLOCK_BYTES // (4 * max(1, n_vocab)))


def _lse(block: np.ndarray, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(log-sum-exp, argmax, sum of exp(logit - max), exp(logit - max)) of each row of `block`.

    The sum is accumulated in float64 (as llama-perplexity does): subtracting from it the kept entries' share
    of the same float32 terms then gives the tail's mass without cancellation error, and exactly 0 when
    nothing was left out. `buf` is scratch of at least the block's shape.
    """
    b = block.shape[0]
    am = block.argmax(axis=1)
    mx = block[np.arange(b), am]
    work = buf[:b]
    np.subtract(block, mx[:, None], out=work)
    np.exp(work, out=work)
    s = work.sum(axis=1, dtype=np.float64)
    lse = mx.astype(np.float64) + np.log(s)
    return lse, am, s, work


def check_finite(lse: np.ndarray) -> None:
    if not np.isfinite(lse).all():
        raise FloatingPointError("the model produced non-finite logits")


def base_rows(logits: np.ndarray, targets: np.ndarray, cutoff: float = CUTOFF,
              max_kept: int = MAX_KEPT) -> BaseRows:
    """Keep what the KLD needs from the base's logits (n, n_vocab) for positions predicting `targets`."""
    n, n_vocab = logits.shape
    step = _block_rows(n_vocab)
    buf = np.empty((min(step, n), n_vocab), dtype=np.float32)
    tgt_lp = np.empty(n, dtype=np.float32)
    top = np.empty(n, dtype=np.int32)
    tail = np.empty(n, dtype=np.float64)
    counts = np.empty(n, dtype=np.int32)
    floor = np.full(n, -cutoff, dtype=np.float32)
    ids_parts: list[np.ndarray] = []
    lps_parts: list[np.ndarray] = []
    for a in range(0, n, step):
        block = logits[a: a + step]
        b = block.shape[0]
        lse, am, total, ex = _lse(block, buf)
        check_finite(lse)
        rows = np.arange(b)
        tgt_lp[a: a + b] = (block[rows, targets[a: a + b]] - lse).astype(np.float32)
        top[a: a + b] = am
        # log p > -cutoff  <=>  logit > lse - cutoff (compared on the raw logits: no log-prob matrix)
        keep = block > (lse - cutoff).astype(np.float32)[:, None]
        over = np.nonzero(keep.sum(axis=1) > max_kept)[0]
        for i in over:  # a flat row: keep its max_kept most likely entries only
            part = np.argpartition(block[i], n_vocab - max_kept)
            keep[i] = False
            keep[i, part[n_vocab - max_kept:]] = True
            floor[a + i] = float(block[i, part[n_vocab - max_kept]] - lse[i])  # the largest left out
        r, c = np.nonzero(keep)
        lp = (block[r, c] - lse[r]).astype(np.float32)
        counts[a: a + b] = np.bincount(r, minlength=b)
        kept = np.bincount(r, weights=ex[r, c], minlength=b)
        tail[a: a + b] = np.maximum(0.0, (total - kept) / total)
        ids_parts.append(c.astype(np.int32))
        lps_parts.append(lp)
    return BaseRows(tgt_lp, top, tail, counts, np.concatenate(ids_parts), np.concatenate(lps_parts), floor)


def model_rows(logits: np.ndarray, targets: np.ndarray, base: BaseRows) -> ModelRows:
    """Compare the model's logits (n, n_vocab) with the base's kept rows for the same n positions."""
    n, n_vocab = logits.shape
    if base.n != n:
        raise ValueError(f"base rows ({base.n}) and model logits ({n}) differ in length")
    step = _block_rows(n_vocab)
    buf = np.empty((min(step, n), n_vocab), dtype=np.float32)
    kld = np.empty(n, dtype=np.float64)
    nll = np.empty(n, dtype=np.float64)
    same_top = np.empty(n, dtype=bool)
    bound = np.zeros(n, dtype=np.float64)
    offsets = np.concatenate(([0], np.cumsum(base.counts, dtype=np.int64)))
    for a in range(0, n, step):
        block = logits[a: a + step]
        b = block.shape[0]
        lse, am, total, ex = _lse(block, buf)
        check_finite(lse)
        rows = np.arange(b)
        # rounded like the base's tgt_lp, so a model compared with itself has a PPL ratio of exactly 1
        nll[a: a + b] = -(block[rows, targets[a: a + b]] - lse).astype(np.float32)
        same_top[a: a + b] = am == base.top[a: a + b]
        lo, hi = offsets[a], offsets[a + b]
        cnt = base.counts[a: a + b]
        r = np.repeat(rows, cnt)
        lp_b = base.lps[lo:hi].astype(np.float64)
        # Same expression and rounding as base_rows, so a model compared with itself gives exactly 0.
        flat = r * n_vocab + base.ids[lo:hi]
        lp_m = (block.reshape(-1)[flat] - lse[r]).astype(np.float32).astype(np.float64)
        p_b = np.exp(lp_b)
        kl_s = np.bincount(r, weights=p_b * (lp_b - lp_m), minlength=b)
        r_b = base.tail[a: a + b]
        kept_m = np.bincount(r, weights=ex.reshape(-1)[flat], minlength=b)
        r_m = np.maximum((total - kept_m) / total, 1e-300)
        with np.errstate(divide="ignore", invalid="ignore"):
            bucket = np.where(r_b > 0, r_b * np.log(np.where(r_b > 0, r_b, 1.0) / r_m), 0.0)
        kld[a: a + b] = kl_s + bucket
        # T <= sum q (log c - min log p_m) = r_b (log c - min log p_m): see the module docstring
        lp_min = block.min(axis=1).astype(np.float64) - lse
        t_max = r_b * (base.floor[a: a + b].astype(np.float64) - lp_min)
        bound[a: a + b] = np.where(r_b > 0, np.maximum(0.0, t_max - bucket), 0.0)
    nll_base = -base.tgt_lp.astype(np.float64)
    p_diff = (np.exp(-nll) - np.exp(-nll_base)).astype(np.float32)
    return ModelRows(kld, nll, nll_base, same_top, p_diff, bound)


def exact_kld(base_logits: np.ndarray, model_logits: np.ndarray) -> np.ndarray:
    """Reference: the full-vocabulary KLD per row in float64 (for tests; memory-hungry on big vocabularies)."""
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))

    lb, lm = log_softmax(base_logits), log_softmax(model_logits)
    return np.asarray((np.exp(lb) * (lb - lm)).sum(axis=1))


@dataclass
class Summary:
    ppl_base: float
    ppl_model: float
    ppl_ratio: float
    ln_ppl_ratio: float
    ln_ppl_ratio_stderr: float
    kld_mean: float
    kld_mean_stderr: float
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top_pct: float
    rms_dp_pct: float
    tokens_scored: int
    kld_trunc_bound: float  # the exact mean KLD is at most kld_mean + this (what the cache left out)


def _mean_unc(x: np.ndarray) -> tuple[float, float]:
    """llama-perplexity's mean_and_uncertainty."""
    n = x.size
    if n < 1:
        return 0.0, 0.0
    f = float(x.sum() / n)
    df = float((x * x).sum() / n - f * f)
    return f, (float(np.sqrt(df / (n - 1))) if df > 0 and n > 10 else 0.0)


def summarize(rows: ModelRows) -> Summary:
    """The figures llama-perplexity prints at the end of a --kl-divergence run, computed its way."""
    n = rows.kld.size
    if n == 0:
        raise ValueError("no scored tokens")
    log_ppl, log_ppl_unc = _mean_unc(rows.nll)
    log_ppl_b, log_ppl_b_unc = _mean_unc(rows.nll_base)
    cov = 0.0
    if n >= 10:
        cov = float((rows.nll * rows.nll_base).sum() / n - (rows.nll.sum() / n) * (rows.nll_base.sum() / n))
        cov /= n - 1
    ratio = log_ppl - log_ppl_b
    ratio_unc = float(np.sqrt(max(0.0, log_ppl_unc ** 2 + log_ppl_b_unc ** 2 - 2.0 * cov)))
    kld_mean, kld_unc = _mean_unc(rows.kld)
    k32 = rows.kld.astype(np.float32)  # llama-perplexity keeps the per-token values as float
    dp2 = rows.p_diff.astype(np.float64) ** 2
    return Summary(
        ppl_base=float(np.exp(log_ppl_b)), ppl_model=float(np.exp(log_ppl)), ppl_ratio=float(np.exp(ratio)),
        ln_ppl_ratio=ratio, ln_ppl_ratio_stderr=ratio_unc, kld_mean=kld_mean, kld_mean_stderr=kld_unc,
        kld_median=float(np.median(k32)), kld_p99=float(np.percentile(k32, 99.0)), kld_max=float(k32.max()),
        same_top_pct=100.0 * float(rows.same_top.mean()), rms_dp_pct=100.0 * float(np.sqrt(dp2.mean())),
        tokens_scored=int(n), kld_trunc_bound=float(rows.kld_bound.mean()),
    )
