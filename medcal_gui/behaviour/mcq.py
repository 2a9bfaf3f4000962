"""Multiple-choice accuracy: each option scored by the log-likelihood of its tokens after the question.

Questions are JSONL in the MedQA shape: `question`, `options` as a mapping of letters to text and `answer`
the right letter; or `options` as a list with `answer` its index (0-based) or letter. The question and its
lettered options are rendered as one user turn through the model's chat template; each option's text is then
the model's answer, scored as llama.cpp's `--multiple-choice` and lm-eval-harness score a continuation: the
sum of the log-probabilities of its tokens. The prompt (the shared prefix) is decoded once per question and
its KV cells are kept; each option is decoded after it and its cells dropped again (`BehaveModel.drop_from`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medcal_gui.behaviour.behave_context import BehaveModel, check_model_file, token_logprobs
from medcal_gui.behaviour.rows import check_size, json_kind, option_text, row_id, text_field
from medcal_gui.behaviour.stats import Proportion, mcnemar_exact
from medcal_gui.core.errors import DataError, InputError
from medcal_gui.core.jobs import CancelToken, Progress, ProgressCallback, RateMeter, no_progress
from medcal_gui.core.text_files import UniqueIds, read_jsonl

STAGE = "mcq"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
INSTRUCTION = "Answer with the text of the correct option."


@dataclass(frozen=True)
class Question:
    id: str
    line: int
    question: str
    labels: tuple[str, ...]  # "A", "B", ...
    options: tuple[str, ...]
    answer: int  # index into options
    source: str = ""  # the question file, for errors found once the model reads the question

    def user_text(self) -> str:
        opts = "\n".join(f"{lab}. {txt}" for lab, txt in zip(self.labels, self.options, strict=True))
        return f"{self.question}\n\n{opts}\n\n{INSTRUCTION}"


QUESTION_EXAMPLE = '"question": "Which rhythm is irregularly irregular?"'
ROW_EXAMPLE = '{"id": "q1", "question": "...", "options": {"A": "...", "B": "..."}, "answer": "A"}'


def _parse_options(opts: object, path: str, line: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(opts, dict):
        labels = tuple(str(k).strip() for k in opts)
        if any(not lab for lab in labels):
            raise DataError('an option has an empty letter; write the options as {"A": "...", "B": "..."}.',
                            path, line)
        twice = sorted({lab for lab in labels if labels.count(lab) > 1})
        if twice:
            raise DataError(f"the option letter {twice[0]!r} is used twice; give each option its own letter.",
                            path, line)
        items = list(zip(labels, opts.values(), strict=True))
    elif isinstance(opts, list):
        items = list(zip(LETTERS, opts, strict=False))
    else:
        found = "missing" if opts is None else json_kind(opts)
        raise DataError(f'the options are {found}; write them as {{"A": "...", "B": "..."}} or as a list '
                        '["...", "..."].', path, line)
    if len(opts) < 2 or len(opts) > len(LETTERS):
        raise DataError(f"a question needs 2 to {len(LETTERS)} options (found {len(opts)}).", path, line)
    texts = tuple(option_text(v, lab, path, line) for lab, v in items)
    return tuple(lab for lab, _ in items), texts


def _parse_answer(ans: object, labels: tuple[str, ...], path: str, line: int) -> int:
    how = f"write the right option's letter ({', '.join(labels)}) or its index (0 to {len(labels) - 1})"
    if ans is None or ans == "":
        raise DataError(f'the answer is missing; {how}, e.g. "answer": "{labels[0]}".', path, line)
    if isinstance(ans, int) and not isinstance(ans, bool):
        if not 0 <= ans < len(labels):
            raise DataError(f"the answer index {ans} is not among the {len(labels)} options (0-based); {how}.",
                            path, line)
        return ans
    if isinstance(ans, str) and ans.strip() in labels:
        return labels.index(ans.strip())
    if isinstance(ans, bool) or not isinstance(ans, str | float):
        raise DataError(f"the answer is {json_kind(ans)}; {how}.", path, line)
    shown = repr(ans) if len(repr(ans)) <= 40 else f"{repr(ans)[:37]}...'"
    raise DataError(f"the answer {shown} is not among the options ({', '.join(labels)}); {how}.", path, line)


def _parse_row(row: Any, path: str, line: int) -> Question:
    if not isinstance(row, dict):
        raise DataError(f"the line holds {json_kind(row)}; each line must be one JSON object such as "
                        f"{ROW_EXAMPLE}.", path, line)
    q = text_field(row, "question", path, line, QUESTION_EXAMPLE)
    labels, texts = _parse_options(row.get("options"), path, line)
    check_size(len(q) + sum(len(t) for t in texts), "the question with its options", path, line)
    idx = _parse_answer(row.get("answer"), labels, path, line)
    return Question(row_id(row, path, line), line, q, labels, texts, idx, path)


def load_questions(path: Path) -> list[Question]:
    """Read a question file; a bad row is a DataError naming its line."""
    path = Path(path)
    out: list[Question] = []
    ids = UniqueIds(path)
    for i, row in read_jsonl(path, "question file"):
        q = _parse_row(row, str(path), i)
        ids.add(q.id, i)
        out.append(q)
    if not out:
        raise InputError(f"The question file {path} holds no questions.")
    return out


@dataclass
class Scored:
    """One question's verdict for one model."""

    id: str
    scores: list[float]  # sum of log-probabilities per option
    n_tokens: list[int]
    predicted: int
    answer: int

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "scores": self.scores, "n_tokens": self.n_tokens, "predicted": self.predicted,
                "answer": self.answer, "correct": self.correct}


@dataclass
class ModelAccuracy:
    model: Path
    name: str
    accuracy: Proportion
    seconds: float
    tokens_evaluated: int  # prefix once per question + every option's tokens
    items: list[Scored] = field(repr=False, default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": str(self.model), "name": self.name, "accuracy": self.accuracy.to_json(),
                "seconds": self.seconds, "tokens_evaluated": self.tokens_evaluated,
                "items": [s.to_json() for s in self.items]}


@dataclass(frozen=True)
class Flips:
    """Verdicts of `b` against `a` on the same questions: b lost (a right, b wrong) and gained."""

    a: str
    b: str
    lost: list[str]
    gained: list[str]
    p_value: float  # exact McNemar

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "lost": self.lost, "gained": self.gained, "n_lost": len(self.lost),
                "n_gained": len(self.gained), "mcnemar_p": self.p_value}


@dataclass
class McqResult:
    questions: str
    n_questions: int
    models: list[ModelAccuracy]
    flips: list[Flips]  # each model after the first against the first

    def to_json(self) -> dict[str, Any]:
        return {"questions": self.questions, "n_questions": self.n_questions, "scoring": "sum log-likelihood",
                "models": [m.to_json() for m in self.models], "flips": [f.to_json() for f in self.flips]}


def flips_between(a: ModelAccuracy, b: ModelAccuracy) -> Flips:
    lost = [x.id for x, y in zip(a.items, b.items, strict=True) if x.correct and not y.correct]
    gained = [x.id for x, y in zip(a.items, b.items, strict=True) if not x.correct and y.correct]
    return Flips(a.name, b.name, lost, gained, mcnemar_exact(len(lost), len(gained)))


def option_logprob(rows: np.ndarray, option: Sequence[int]) -> float:
    """Sum of log-softmax at the option's tokens; rows[j] are the logits that predict option[j]."""
    return float(token_logprobs(rows, option).sum())


def score_options(m: BehaveModel, prefix: Sequence[int], options: Sequence[Sequence[int]]) -> list[float]:
    """Scores of `options` after `prefix`, the prefix's tokens evaluated once: in one batch where the prefix
    belongs to every option's sequence and each option follows it in its own; with more options than the
    context has sequences, the prefix is decoded alone, its KV cells kept, and the options one at a time."""
    m.check_fits(len(prefix) + max(len(o) for o in options), "A question with its longest option")
    n = len(prefix)
    k = len(options)
    if k <= m.n_seq_max and n + sum(len(o) for o in options) <= m.n_ctx:
        # one forward pass: the prefix once (in every option's sequence), each option after it
        rows = np.array(m.decode_shared(prefix, [o[:-1] for o in options]), copy=True)
        m.clear()
        out, at = [], 1
        for o in options:
            r = rows[at: at + len(o) - 1]
            at += len(o) - 1
            out.append(option_logprob(np.concatenate([rows[:1], r]), o))
        return out
    m.clear()
    last = np.array(m.decode(prefix, 0), copy=True)  # predicts each option's first token
    scores = []
    for opt in options:
        m.drop_from(n)
        if len(opt) > 1:
            rows = np.concatenate([last, m.decode(opt[:-1], n, logits_from=0)])
        else:
            rows = last
        scores.append(option_logprob(rows, opt))
    m.drop_from(n)
    return scores


def score_direct(m: BehaveModel, prefix: Sequence[int], option: Sequence[int]) -> float:
    """The same score computed from scratch: the whole prefix+option sequence in one decode, no reuse."""
    m.clear()
    seq = list(prefix) + list(option)
    rows = m.decode(seq[:-1], 0, logits_from=len(prefix) - 1)
    return option_logprob(np.array(rows, copy=True), option)


def encode_question(m: BehaveModel, q: Question) -> tuple[list[int], list[list[int]]]:
    prefix = m.prompt_tokens([{"role": "user", "content": q.user_text()}])
    return prefix, [m.text_tokens(o) for o in q.options]


def score_model(path: Path, questions: Sequence[Question], *, n_ctx: int = 2048, threads: int = 1,
                progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
                label: str = "") -> ModelAccuracy:
    cancel = cancel or CancelToken()
    meter = RateMeter()
    items: list[Scored] = []
    n_tok = 0
    with BehaveModel(path, n_ctx=n_ctx, threads=threads, cancel=cancel) as m:
        for i, q in enumerate(questions):
            cancel.check()
            prefix, opts = encode_question(m, q)
            where = q.source or None
            if any(not o for o in opts):
                raise DataError("an option tokenizes to nothing; give it some text.", where, q.line)
            need = len(prefix) + max(len(o) for o in opts)
            if need > m.n_ctx:  # named at its line here, not by the scorer's generic check
                raise DataError(f"the question with its longest option needs {need} tokens; the context holds "
                                f"{m.n_ctx}. Raise --ctx or shorten it.", where, q.line)
            scores = score_options(m, prefix, opts)
            n_tok += len(prefix) + sum(len(o) - 1 for o in opts)
            items.append(Scored(q.id, scores, [len(o) for o in opts], int(np.argmax(scores)), q.answer))
            progress(Progress(STAGE, i + 1, len(questions), unit="questions", message=label or m.name,
                              rate=meter.rate(n_tok), rate_unit="tokens"))
        name = m.name
    k = sum(s.correct for s in items)
    return ModelAccuracy(Path(path), name, Proportion.of(k, len(items)), meter.elapsed(), n_tok, items)


def run_mcq(models: Sequence[Path], questions: Path | Sequence[Question], *, n_ctx: int = 2048,
            threads: int | None = None, progress: ProgressCallback = no_progress,
            cancel: CancelToken | None = None) -> McqResult:
    """Accuracy of each model on the questions, and the flips of every later model against the first."""
    import os

    cancel = cancel or CancelToken()
    if not models:
        raise InputError("No model was given to score.")
    for p in models:  # every model, before the first one's minutes of work
        check_model_file(Path(p))
    label = str(questions) if isinstance(questions, Path) else "<questions>"
    qs = load_questions(questions) if isinstance(questions, Path) else list(questions)
    threads = threads or os.cpu_count() or 1
    accs = [score_model(Path(p), qs, n_ctx=n_ctx, threads=threads, progress=progress, cancel=cancel,
                        label=f"{j + 1}/{len(models)} {Path(p).name}") for j, p in enumerate(models)]
    return McqResult(label, len(qs), accs, [flips_between(accs[0], b) for b in accs[1:]])
