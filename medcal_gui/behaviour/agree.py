"""Answer agreement: does the quant still answer like its base? Greedy answers to the same prompts, compared.

Prompts come from a JSONL file (`{"id", "prompt"}` or `{"id", "messages": [...]}`) or from narrative files
turned into user turns through a prompt variant, on the held-out records by default (the project's one
hold-out definition, `dataset.holdout.split_records`: the last 20 % of the records, which step 3 keeps
out of the calibration text). Each model answers every prompt greedily (argmax, so no seed matters and a
model against itself gives the same tokens) through its chat template, stopping at end of turn or after
`n_max` tokens. Per prompt: identical or not, the first token where the answers part, token-level edit
similarity, word ROUGE-L, and the clinical facts of the base's answer that the quant's keeps.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.behaviour.behave_context import BehaveModel, check_model_file
from medcal_gui.behaviour.clinical_facts import FactCheck, compare_facts, count_kept
from medcal_gui.behaviour.rows import check_size, json_kind, row_id, text_field
from medcal_gui.behaviour.stats import Proportion
from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, no_progress
from medcal_gui.core.text_files import UniqueIds, read_jsonl

STAGE = "agree"
Message = dict[str, str]


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    source: str = ""

    def as_messages(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def text(self) -> str:
        return self.messages[-1][1]


ROLES = ("system", "user", "assistant")
PROMPT_EXAMPLE = '"prompt": "Summarise this ECG report"'
ROW_EXAMPLE = '{"id": "p1", "prompt": "..."} or {"id": "p1", "messages": [{"role": "user", "content": "..."}]}'


def _messages(raw: list[object], where: str, i: int) -> tuple[tuple[str, str], ...]:
    how = '{"role": "user", "content": "..."}'
    msgs: list[tuple[str, str]] = []
    for k, m in enumerate(raw, 1):
        if not isinstance(m, dict):
            raise DataError(f"message {k} is {json_kind(m)}; write each message as {how}.", where, i)
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or role.strip() not in ROLES:
            found = repr(role) if isinstance(role, str) and len(role) <= 40 else json_kind(role)
            raise DataError(f"message {k} has the role {found}; write one of {', '.join(ROLES)}.", where, i)
        if not isinstance(content, str):
            raise DataError(f"message {k}'s content is {json_kind(content)}, not a text; write {how}.", where, i)
        msgs.append((role.strip(), content))
    if msgs[-1][0] != "user":
        raise DataError("the last message must be the user's.", where, i)
    return tuple(msgs)


def _jsonl_prompts(path: Path) -> list[Prompt]:
    out: list[Prompt] = []
    ids = UniqueIds(path)
    where = str(path)
    for i, row in read_jsonl(path, "prompt file"):
        if not isinstance(row, dict):
            raise DataError(f"the line holds {json_kind(row)}; each line must be one JSON object such as "
                            f"{ROW_EXAMPLE}.", where, i)
        msgs: tuple[tuple[str, str], ...]
        if "prompt" in row:
            msgs = (("user", text_field(row, "prompt", where, i, PROMPT_EXAMPLE)),)
        elif isinstance(row.get("messages"), list) and row["messages"]:
            msgs = _messages(row["messages"], where, i)
        elif "messages" in row:
            found = "an empty list" if row["messages"] == [] else json_kind(row["messages"])
            raise DataError(f"the messages are {found}; write a list such as "
                            '[{"role": "user", "content": "..."}].', where, i)
        else:
            raise DataError(f"the line has neither a prompt nor messages; write {ROW_EXAMPLE}.", where, i)
        check_size(sum(len(c) for _, c in msgs), "the prompt", where, i)
        pid = row_id(row, where, i)
        ids.add(pid, i)
        out.append(Prompt(pid, msgs, f"{path}, line {i}"))
    return out


def load_prompts(inputs: Sequence[Path], *, variant: str | None = None, held_out: bool = True,
                 limit: int | None = None) -> list[Prompt]:
    """Prompts from one JSONL file, or from narrative files through `variant` (held-out records only
    unless `held_out` is False)."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("No prompt file was given.")
    if limit is not None and limit < 1:  # prompts[:-3] would silently drop the last three
        raise InputError(f"The number of prompts to use must be at least 1 (got {limit}).")
    if len(paths) == 1 and paths[0].suffix.lower() == ".jsonl":
        prompts = _jsonl_prompts(paths[0])
    else:
        from medcal_gui.dataset.formatting import user_content
        from medcal_gui.dataset.holdout import split_records
        from medcal_gui.dataset.reading.loader import load_dataset
        from medcal_gui.dataset.variants import DEFAULT_VARIANT, get_variant

        for p in paths:
            if not p.exists():
                raise InputError(f"The prompt file {p} does not exist.")
        ds = load_dataset(paths)
        if ds.errors:
            raise InputError(ds.errors[0])
        v = get_variant(variant or DEFAULT_VARIANT)
        records = split_records(ds.records)[1] if held_out else ds.records
        prompts = [Prompt(r.id, (("user", user_content(r.text, v)),), f"{r.source}, line {r.line}")
                   for r in records]
    if limit is not None:
        prompts = prompts[:limit]
    if not prompts:
        raise InputError(f"{paths[0]} gives no prompts (with held-out records only, a dataset needs at "
                         "least two records; use --all-records).")
    return prompts


# ------------------------------------------------------------------------------------------------ metrics


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance (insert, delete, substitute: 1 each)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def edit_similarity(a: Sequence[Any], b: Sequence[Any]) -> float:
    n = max(len(a), len(b))
    return 1.0 if n == 0 else 1.0 - edit_distance(a, b) / n


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 over lower-cased words and punctuation."""
    wa, wb = WORD_RE.findall(a.lower()), WORD_RE.findall(b.lower())
    if not wa and not wb:
        return 1.0
    lcs = _lcs(wa, wb)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(wb), lcs / len(wa)
    return 2 * p * r / (p + r)


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# ------------------------------------------------------------------------------------------------ results


@dataclass
class Answer:
    tokens: list[int]
    text: str
    finish: str  # "stop" (end of turn) or "length"


@dataclass
class PromptAgreement:
    id: str
    prompt: str
    base: Answer
    other: Answer
    identical: bool
    first_diff: int | None
    edit_similarity: float
    rouge_l: float
    facts: FactCheck

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "base": self.base.text, "answer": self.other.text,
                "base_tokens": len(self.base.tokens), "answer_tokens": len(self.other.tokens),
                "identical": self.identical, "first_diff": self.first_diff,
                "edit_similarity": self.edit_similarity, "rouge_l": self.rouge_l,
                "facts_base": self.facts.base, "facts_kept": self.facts.kept, "facts_missing": self.facts.missing}


@dataclass
class ModelAgreement:
    model: Path
    name: str
    prompts: list[PromptAgreement]
    tokens_generated: int
    gen_seconds: float

    @property
    def identical(self) -> Proportion:
        return Proportion.of(sum(p.identical for p in self.prompts), len(self.prompts))

    @property
    def facts_kept(self) -> Proportion:
        return Proportion.of(*count_kept(p.facts for p in self.prompts))

    def summary(self) -> dict[str, Any]:
        diffs = [p.first_diff for p in self.prompts if p.first_diff is not None]
        return {
            "identical": self.identical.to_json(),
            "first_diff_mean": statistics.fmean(diffs) if diffs else None,
            "first_diff_median": statistics.median(diffs) if diffs else None,
            "edit_similarity_mean": statistics.fmean(p.edit_similarity for p in self.prompts),
            "rouge_l_mean": statistics.fmean(p.rouge_l for p in self.prompts),
            "facts_kept": self.facts_kept.to_json(),
            "tokens_generated": self.tokens_generated,
            "tokens_per_s": self.tokens_generated / self.gen_seconds if self.gen_seconds > 0 else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model), "name": self.name, **self.summary(),
                "prompts": [p.to_json() for p in self.prompts]}


@dataclass
class AgreeResult:
    base: Path
    n_max: int
    n_prompts: int
    base_tokens_per_s: float | None
    models: list[ModelAgreement]
    decoding: str = "greedy (temperature 0, argmax; seed 0)"
    outputs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"base": str(self.base), "n_max": self.n_max, "n_prompts": self.n_prompts,
                "decoding": self.decoding, "base_tokens_per_s": self.base_tokens_per_s,
                "models": [m.to_json() for m in self.models], "outputs": self.outputs}


def answer_all(path: Path, prompts: Sequence[Prompt], n_max: int, *, n_ctx: int, threads: int,
               progress: ProgressCallback, cancel: CancelToken, done0: int, total: int
               ) -> tuple[list[Answer], float]:
    """Greedy answers of one model to every prompt, and the seconds its generation loops took."""
    answers: list[Answer] = []
    gen_s = 0.0
    with BehaveModel(path, n_ctx=n_ctx, threads=threads, cancel=cancel) as m:
        for i, p in enumerate(prompts):
            cancel.check()
            prompt = m.prompt_tokens(p.as_messages())
            if len(prompt) + n_max > m.n_ctx:  # named at its file and line, not by greedy's generic check
                raise InputError(f"{p.source}: the prompt needs {len(prompt)} tokens and its answer up to "
                                 f"{n_max}; the context holds {m.n_ctx}. Raise --ctx, lower -n or shorten the "
                                 "prompt.")
            toks, finish = m.greedy(prompt, n_max)
            gen_s += m.last_gen_s
            answers.append(Answer(toks, m.detokenize(toks).strip(), finish))
            n_tok = sum(len(a.tokens) for a in answers)
            progress(Progress(STAGE, done0 + i + 1, total, unit="answers", message=m.name,
                              rate=n_tok / gen_s if gen_s > 0 else None, rate_unit="tokens"))
    return answers, gen_s


def compare_answers(p: Prompt, a: Answer, b: Answer) -> PromptAgreement:
    fd = first_difference(a.tokens, b.tokens)
    return PromptAgreement(p.id, p.text, a, b, fd is None, fd, edit_similarity(a.tokens, b.tokens),
                           rouge_l(a.text, b.text), compare_facts(a.text, b.text))


def agree(base: Path, models: Sequence[Path], prompts: Sequence[Prompt], *, n_max: int = 128,
          n_ctx: int = 2048, threads: int | None = None, progress: ProgressCallback = no_progress,
          cancel: CancelToken | None = None) -> AgreeResult:
    """Answer `prompts` with the base and each model (one loaded at a time) and compare the answers."""
    cancel = cancel or CancelToken()
    threads = threads or os.cpu_count() or 1
    if n_max < 1:
        raise InputError(f"The answer length must be at least one token (got {n_max}).")
    for mp in (base, *models):  # every model, before the base's minutes of work
        check_model_file(Path(mp))
    total = len(prompts) * (1 + len(models))
    base_ans, base_s = answer_all(Path(base), prompts, n_max, n_ctx=n_ctx, threads=threads, progress=progress,
                                  cancel=cancel, done0=0, total=total)
    out: list[ModelAgreement] = []
    for j, mp in enumerate(models):
        ans, gen_s = answer_all(Path(mp), prompts, n_max, n_ctx=n_ctx, threads=threads, progress=progress,
                                cancel=cancel, done0=len(prompts) * (j + 1), total=total)
        out.append(ModelAgreement(Path(mp), Path(mp).name,
                                  [compare_answers(p, a, b) for p, a, b in zip(prompts, base_ans, ans, strict=True)],
                                  sum(len(a.tokens) for a in ans), gen_s))
    n_base = sum(len(a.tokens) for a in base_ans)
    return AgreeResult(Path(base), n_max, len(prompts), n_base / base_s if base_s > 0 else None, out)
