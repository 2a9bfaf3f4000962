"""convert/config.read_json_keys: a few top-level values of a large JSON file (tokenizer.json), parsed without
the rest of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medcal_gui.convert.config import read_json_keys
from medcal_gui.core.errors import ModelError

KEYS = ("added_tokens", "post_processor")
ADDED = [{"id": 2, "content": "<bos>", "special": True}, {"id": 106, "content": "<start_of_turn>"}]
POST = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<bos>"}}, {"Sequence": {"id": "A"}}]}


def _tokenizer_json(path: Path, *, model_first: bool = False, tail: str = "") -> Path:
    doc: dict[str, object] = {"version": "1.0", "truncation": None, "padding": {"pad": "}{\\\"x"},
                              "added_tokens": ADDED, "normalizer": None, "post_processor": POST,
                              "model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(2000)}}}
    if model_first:
        doc = {"model": doc.pop("model"), **doc}
    path.write_text(json.dumps(doc, indent=2)[:-1] + tail + "}" if tail else json.dumps(doc, indent=2),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("model_first", [False, True], ids=["as-transformers-writes-it", "vocabulary-first"])
def test_values_equal_a_whole_file_parse(tmp_path: Path, model_first: bool) -> None:
    path = _tokenizer_json(tmp_path / "tokenizer.json", model_first=model_first)
    whole = json.loads(path.read_text(encoding="utf-8"))
    got = read_json_keys(path, KEYS)
    assert got == {k: whole[k] for k in KEYS}
    assert got["added_tokens"] == ADDED and got["post_processor"] == POST


def test_stops_after_the_last_key_it_wants(tmp_path: Path) -> None:
    """What follows the keys (the vocabulary) is never parsed: a file broken only there still gives them."""
    path = _tokenizer_json(tmp_path / "tokenizer.json", tail=', "broken": [1, 2,,, ')
    with pytest.raises(ValueError):
        json.loads(path.read_text(encoding="utf-8"))
    assert read_json_keys(path, KEYS) == {"added_tokens": ADDED, "post_processor": POST}


def test_absent_keys_and_files(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"version": "1.0", "model": {}}', encoding="utf-8")
    assert read_json_keys(path, KEYS) == {}
    assert read_json_keys(tmp_path / "missing.json", KEYS) == {}


@pytest.mark.parametrize("text", ['{"added_tokens": [1, 2', "[1, 2]", '{"a" 1}', "\ufeff{}"])
def test_a_broken_file_is_named_as_the_whole_file_parse_names_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(text, encoding="utf-8")
    if text == "[1, 2]":  # valid JSON, not an object: nothing to read, as before
        assert read_json_keys(path, KEYS) == {}
        return
    with pytest.raises(ModelError) as info:
        read_json_keys(path, KEYS)
    assert str(path) in info.value.message
