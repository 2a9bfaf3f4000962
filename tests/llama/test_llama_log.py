"""llama.cpp's log, captured per thread: two jobs running llama.cpp at once never mix their lines."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from medcal_gui.calibrate.tokens import _Vocab
from medcal_gui.llama.log import add_line_listener, capture_lines, flush_pending
from medcal_gui.quantize.quantize import quantize_model

ROUNDS = 4


def _shape(line: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", line)  # numbers vary (timings); the line's shape does not


def _dry_run(model: Path, out: Path) -> int:
    return quantize_model(model, out, "Q8_0", dry_run=True).output_bytes


def _vocab(model: Path) -> None:
    _Vocab(model).close()


def _alone(fn, *args) -> tuple[set[str], object]:  # type: ignore[no-untyped-def]
    with capture_lines() as lines:
        result = fn(*args)
    return {_shape(ln) for _, ln in lines}, result


def test_token_count_and_dry_run_at_once_keep_their_own_lines(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.gguf"
    dry_shapes, dry_bytes = _alone(_dry_run, tiny_model, out)
    vocab_shapes, _ = _alone(_vocab, tiny_model)
    only_vocab = vocab_shapes - dry_shapes
    assert "llama_model_load: vocab only - skipping tensors" in only_vocab  # what would betray a mix-up

    barrier = threading.Barrier(2)
    heard: dict[str, list[str]] = {"dry": [], "vocab": []}
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(name: str, fn, *args) -> None:  # type: ignore[no-untyped-def]
        # the listener API as the quantizer uses it: added on the job's own thread
        remove = add_line_listener(lambda _level, line: heard[name].append(line))
        try:
            barrier.wait(10)
            for _ in range(ROUNDS):
                r = fn(*args)
                if r is not None:
                    results.append(r)
            flush_pending()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            remove()

    threads = [threading.Thread(target=worker, args=("dry", _dry_run, tiny_model, out)),
               threading.Thread(target=worker, args=("vocab", _vocab, tiny_model))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert results == [dry_bytes] * ROUNDS  # the sizes parsed from the dry run's own lines
    assert {_shape(ln) for ln in heard["dry"]} <= dry_shapes
    assert {_shape(ln) for ln in heard["vocab"]} <= vocab_shapes
    tensor_lines = [ln for ln in heard["dry"] if re.match(r"^\[\s*\d+/\s*28\]", ln)]
    assert len(tensor_lines) == 28 * ROUNDS
    assert sum("vocab only" in ln for ln in heard["vocab"]) == ROUNDS


def test_capture_lines_hears_only_its_own_thread(tiny_model: Path) -> None:
    other: list[str] = []
    with capture_lines() as mine:
        t = threading.Thread(target=lambda: other.extend(ln for _, ln in _capture_vocab(tiny_model)))
        t.start()
        t.join(60)
    assert other and any("vocab only" in ln for ln in other)
    assert mine == []  # this thread called no llama.cpp inside the block


def _capture_vocab(model: Path) -> list[tuple[int, str]]:
    with capture_lines() as lines:
        _vocab(model)
    return lines
