"""Gemma's SentencePiece vocabulary, special tokens and chat template, as llama.cpp's converter writes them.

`tokenizer.model` is a protobuf `ModelProto`; only its repeated `pieces` field (piece, score, type) is needed,
so it is decoded here by hand rather than through the sentencepiece package (not a run-time dependency).
The rules follow llama.cpp's `_create_vocab_sentencepiece` and gguf's `SpecialVocab`:
- the vocabulary has `vocab_size` entries (config.json); ids the tokenizer lacks become `[PAD<id>]`, score
  -10000, type UNUSED;
- a piece's type is UNKNOWN, CONTROL, UNUSED or BYTE as the model says, otherwise NORMAL (a user-defined piece
  too); `added_tokens.json` entries become USER_DEFINED, and `tokenizer_config.json`'s `added_tokens_decoder`
  entries CONTROL when special (or looking special, like `<unused0>`) else USER_DEFINED, each with score -1000;
- special-token ids come from tokenizer.json's added tokens, then config.json's `*_token_id`; add-BOS/EOS from
  tokenizer.json's post-processor, then tokenizer_config.json; the chat template from tokenizer_config.json,
  else chat_template.jinja (with additional_chat_templates/), else chat_template.json.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.convert.config import read_json_keys, read_json_optional
from medcal_gui.convert.folder import MAX_TEXT_BYTES, MAX_TOKENIZER_BYTES, present, read_bytes, read_text
from medcal_gui.convert.values import MAX_VOCAB, show
from medcal_gui.core.errors import ModelError
from medcal_gui.core.markers import TURN_MARKERS

log = logging.getLogger(__name__)

# gguf / SentencePiece token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
TURN_TOKENS = TURN_MARKERS
MAX_TEMPLATE_BYTES = MAX_TEXT_BYTES  # Gemma 3's template is 1.5 KB


class TokenizerError(ModelError):
    """The tokenizer files are missing, unreadable or unfit for a Gemma chat model."""


@dataclass
class Vocab:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    special_ids: dict[str, int] = field(default_factory=dict)
    add_special: dict[str, bool] = field(default_factory=dict)
    chat_template: str | list[dict[str, str]] | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported protobuf wire type {wire}")


def parse_sentencepiece(data: bytes) -> list[tuple[bytes, float, int]]:
    """(piece, score, type) for each piece of a serialized SentencePiece ModelProto."""
    pieces: list[tuple[bytes, float, int]] = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        fnum, wire = key >> 3, key & 7
        if fnum == 1 and wire == 2:
            n, pos = _varint(data, pos)
            sub_end = pos + n
            if sub_end > end:
                raise ValueError("piece runs past the end of the file")
            piece, score, ptype = b"", 0.0, NORMAL
            while pos < sub_end:
                k, pos = _varint(data, pos)
                f, w = k >> 3, k & 7
                if f == 1 and w == 2:
                    ln, pos = _varint(data, pos)
                    piece = data[pos:pos + ln]
                    pos += ln
                elif f == 2 and w == 5:
                    (score,) = struct.unpack_from("<f", data, pos)
                    pos += 4
                elif f == 3 and w == 0:
                    ptype, pos = _varint(data, pos)
                else:
                    pos = _skip(data, pos, w)
            pieces.append((piece, score, ptype))
            if len(pieces) > MAX_VOCAB:  # bounded before a list of that size is built from it
                raise ValueError(f"more than {MAX_VOCAB:,} pieces")
        else:
            pos = _skip(data, pos, wire)
    if pos != end:
        raise ValueError("truncated protobuf")
    return pieces


def looks_special(token: str) -> bool:
    """llama.cpp's `does_token_look_special`: added tokens that ought to be control tokens."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _sentencepiece_pieces(path: Path) -> list[tuple[str, float, int]]:
    data = read_bytes(path.parent, path, "tokenizer", MAX_TOKENIZER_BYTES)
    try:
        pieces = parse_sentencepiece(data)
    except (ValueError, IndexError, struct.error) as exc:
        raise TokenizerError(f"The tokenizer {path} cannot be read as a SentencePiece model ({exc}). Download it "
                             "again.") from exc
    return [(p.decode("utf-8", errors="replace"), float(sc),
             t if t in (UNKNOWN, CONTROL, UNUSED, BYTE) else NORMAL) for p, sc, t in pieces]


def _merge_pair(m: Any) -> tuple[str, str] | None:
    if isinstance(m, str) and " " in m:
        a, b = m.split(" ", 1)
        return a, b
    if isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m):
        return m[0], m[1]
    return None


def _tokenizer_json_pieces(path: Path) -> list[tuple[str, float, int]]:
    """The pieces of a tokenizer.json saved from Gemma's SentencePiece model (BPE with byte fallback, or
    Unigram), as the SentencePiece model would list them. A BPE tokenizer.json keeps no scores; llama.cpp's
    SentencePiece tokenizer only compares the scores of merged pieces, and the merges are listed in the order
    SentencePiece ranks them, so a merged piece scores -(its merge's rank): the same merges win."""
    doc = read_json_optional(path, "tokenizer", MAX_TOKENIZER_BYTES)
    model = (doc or {}).get("model")
    if not isinstance(model, dict):
        raise TokenizerError(f"The tokenizer {path} has no model section. Download it again.")
    unk = model.get("unk_token")
    if model.get("type") == "Unigram" and isinstance(model.get("vocab"), list):
        if len(model["vocab"]) > MAX_VOCAB:
            raise TokenizerError(f'{path}: "model.vocab" lists {len(model["vocab"]):,} pieces; medcal reads at most '
                                 f"{MAX_VOCAB:,}. Use the model's own tokenizer files.")
        out = []
        for i, entry in enumerate(model["vocab"]):
            if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                    or not isinstance(entry[1], (int, float)) or isinstance(entry[1], bool)):
                raise TokenizerError(f'{path}: "model.vocab" entry {i} is {show(entry)}; each entry is a piece and its '
                                     'score, e.g. ["\u2581the", -3.2]. Download the tokenizer again.')
            piece, score = entry[0], float(entry[1])
            out.append((piece, score, UNKNOWN if i == model.get("unk_id") else _piece_type(piece)))
        return out
    vocab = model.get("vocab")
    if model.get("type") != "BPE" or not isinstance(vocab, dict):
        raise TokenizerError(f"The tokenizer {path} is a {show(model.get('type'))} tokenizer; medcal reads Gemma's "
                             "SentencePiece (BPE or Unigram) tokenizers. Use the model's own tokenizer files.")
    merges = model.get("merges") or []
    rank: dict[str, int] = {}
    for r, m in enumerate(merges if isinstance(merges, list) else []):
        pair = _merge_pair(m)
        if pair is not None:
            rank.setdefault(pair[0] + pair[1], r)
    ids = {piece: tid for piece, tid in vocab.items() if isinstance(tid, int) and not isinstance(tid, bool)
           and tid >= 0}
    size = max(ids.values(), default=-1) + 1
    if size > MAX_VOCAB:  # the list below has one entry per id up to the largest
        big = max(ids, key=lambda k: ids[k])
        raise TokenizerError(f'{path}: "model.vocab" gives {big!r} the id {ids[big]:,}; a vocabulary has at most '
                             f"{MAX_VOCAB:,} tokens. Use the model's own tokenizer files.")
    out = [(f"[PAD{i}]", -10000.0, UNUSED) for i in range(size)]
    for piece, tid in ids.items():
        score = -float(rank[piece]) if piece in rank else -float(len(merges) + tid)
        out[tid] = (piece, score, UNKNOWN if piece == unk else _piece_type(piece))
    return out


def _piece_type(piece: str) -> int:
    return BYTE if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">") else NORMAL


def _sentencepiece_vocab(hf_dir: Path, vocab_size: int | None) -> tuple[list[str], list[float], list[int]]:
    path = hf_dir / "tokenizer.model"
    if present(path):
        pieces = _sentencepiece_pieces(path)
    elif present(hf_dir / "tokenizer.json"):
        pieces = _tokenizer_json_pieces(hf_dir / "tokenizer.json")
    else:
        raise TokenizerError(f"The model folder {hf_dir} has no tokenizer (tokenizer.model or tokenizer.json). "
                             "Download the complete model folder, tokenizer files included.")
    if not pieces:
        raise TokenizerError(f"The tokenizer in {hf_dir} holds no tokens. Download it again.")
    size = int(vocab_size or len(pieces))  # vocab_size: bounded and checked against the weights already
    tokens = [f"[PAD{i}]" for i in range(size)]
    scores = [-10000.0] * size
    types = [UNUSED] * size
    if len(pieces) > size:
        log.warning("tokenizer has %d pieces, config vocab_size is %d: ignoring the rest", len(pieces), size)
    for i, (piece, score, ptype) in enumerate(pieces[:size]):
        tokens[i], scores[i], types[i] = piece, score, ptype

    added = read_json_optional(hf_dir / "added_tokens.json", "added tokens") or {}
    for text, tid in added.items():
        if isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid < size:
            tokens[tid], scores[tid], types[tid] = text, -1000.0, USER_DEFINED

    tconf = read_json_optional(hf_dir / "tokenizer_config.json", "tokenizer settings") or {}
    decoder = tconf.get("added_tokens_decoder") or {}
    if not decoder and not present(path):
        # no tokenizer_config.json entries: tokenizer.json's own list of added tokens says the same
        added_list = read_json_keys(hf_dir / "tokenizer.json", ("added_tokens",)).get("added_tokens")
        decoder = {str(a["id"]): a for a in added_list if isinstance(a, dict) and "id" in a} if isinstance(
            added_list, list) else {}
    if isinstance(decoder, dict):
        for key, data in decoder.items():
            if not isinstance(data, dict) or not isinstance(data.get("content"), str):
                continue
            try:
                tid = int(key)
            except ValueError:
                continue
            text = data["content"]
            if not 0 <= tid < size:
                continue
            if data.get("special") or looks_special(text):
                types[tid] = CONTROL
            else:
                text = text.replace("\u2581", " ")
                types[tid] = USER_DEFINED
            tokens[tid], scores[tid] = text, -1000.0
    return tokens, scores, types


def _token_content(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return str(entry["content"])
    return None


def _special_tokens(hf_dir: Path, vocab: Vocab) -> None:
    n = len(vocab.tokens)
    tj = read_json_keys(hf_dir / "tokenizer.json", ("added_tokens", "post_processor"))
    tconf = read_json_optional(hf_dir / "tokenizer_config.json", "tokenizer settings") or {}
    stmap = read_json_optional(hf_dir / "special_tokens_map.json", "special tokens map") or {}
    index: dict[str, int] = {}
    for i, t in enumerate(vocab.tokens):
        index.setdefault(t, i)

    def put(typ: str, tid: Any) -> None:
        if isinstance(tid, int) and not isinstance(tid, bool) and 0 <= tid < n and typ not in vocab.special_ids:
            vocab.special_ids[typ] = tid

    added: list[Any] = tj["added_tokens"] if isinstance(tj.get("added_tokens"), list) else []
    for typ in SPECIAL_TYPES:
        content = _token_content(tconf.get(f"{typ}_token"))
        if content is None:
            content = _token_content(stmap.get(f"{typ}_token"))
        if content is None:
            continue
        # tokenizer.json's added tokens, as gguf's SpecialVocab; else the vocabulary itself (a folder saved
        # without tokenizer.json), which gives the same id wherever both exist
        tid = next((a.get("id") for a in added if isinstance(a, dict) and a.get("content") == content), None)
        put(typ, tid if tid is not None else index.get(content))

    cfg = read_json_optional(hf_dir / "config.json", "model configuration") or {}
    for typ in SPECIAL_TYPES:
        tid = cfg.get(f"{typ}_token_id")
        if tid is None and isinstance(cfg.get("text_config"), dict):
            tid = cfg["text_config"].get(f"{typ}_token_id")
        put(typ, tid)

    post = tj.get("post_processor") or {}
    procs = post.get("processors", [post]) if isinstance(post, dict) else []
    for proc in procs if isinstance(procs, list) else []:
        if not isinstance(proc, dict) or proc.get("type") != "TemplateProcessing":
            continue
        single: list[Any] = proc["single"] if isinstance(proc.get("single"), list) else []
        bos = _token_content(tconf.get("bos_token"))
        eos = _token_content(tconf.get("eos_token"))
        first = last = None
        if len(single) > 1:
            first = _special_id(single[0])
            last = _special_id(single[-1])
            if first:
                vocab.add_special["bos"] = first == bos
            if last:
                vocab.add_special["eos"] = last == eos
        pair: list[Any] = proc["pair"] if isinstance(proc.get("pair"), list) else []
        _pair_template(pair, first, last, eos, _token_content(tconf.get("sep_token")), vocab)
    for typ in SPECIAL_TYPES:
        flag = tconf.get(f"add_{typ}_token")
        if isinstance(flag, bool) and typ not in vocab.add_special:
            vocab.add_special[typ] = flag


def _part(item: Any, kind: str) -> Any:
    """The id of a template part {"SpecialToken": {"id": ...}} or {"Sequence": {"id": ...}} (None otherwise)."""
    inner = item.get(kind) if isinstance(item, dict) else None
    return inner.get("id") if isinstance(inner, dict) else None


def _special_id(item: Any) -> Any:
    return _part(item, "SpecialToken")


def _pair_template(pair: list[Any], first: Any, last: Any, eos: str | None, sep: str | None, vocab: Vocab) -> None:
    """add_sep_token from the pair template "A [sep] B", as gguf's SpecialVocab reads it."""
    if not pair:
        return
    start = 1 if first and _special_id(pair[0]) == first else 0
    stop = -1 if last and _special_id(pair[-1]) == last else None
    body = pair[start:stop]
    if not body or not all(isinstance(x, dict) for x in (body[0], body[-1])):
        return
    a, b = _part(body[0], "Sequence"), _part(body[-1], "Sequence")
    middle = body[1:-1]
    if a != "A" or b != "B" or not middle:
        return
    add_sep = False
    entry = _special_id(middle[0])
    if entry and entry in (sep, eos) and not last:
        add_sep = True
    if len(middle) == 2 and _special_id(middle[1]) in (sep, eos) and _special_id(middle[1]):
        add_sep = True
    vocab.add_special["sep"] = add_sep


def _template_file(hf_dir: Path, path: Path) -> str:
    return read_text(hf_dir, path, "chat template", limit=MAX_TEMPLATE_BYTES,
                     fix="Save it as UTF-8 (the template is text the model is prompted with).")


def _template_value(value: Any, path: Path, key: str) -> str | list[dict[str, str]] | None:
    """A chat template as gguf writes it: one string, or a list of {"name", "template"} strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                       and isinstance(t.get("template"), str) for t in value):
        return [{"name": t["name"], "template": t["template"]} for t in value]
    raise TokenizerError(f'{path}: "{key}" is {show(value)}; write the template as one string, or a list of '
                         '{"name": ..., "template": ...} objects.')


def _chat_template(hf_dir: Path) -> str | list[dict[str, str]] | None:
    tconf_path = hf_dir / "tokenizer_config.json"
    tconf = read_json_optional(tconf_path, "tokenizer settings") or {}
    alt: str | list[dict[str, str]] | None = None
    jinja = hf_dir / "chat_template.jinja"
    if present(jinja):
        alt = _template_file(hf_dir, jinja)
        extra = hf_dir / "additional_chat_templates"
        more = sorted(extra.glob("*.jinja")) if extra.is_dir() else []
        if more:
            alt = [{"name": "default", "template": alt}]
            alt += [{"name": p.stem, "template": _template_file(hf_dir, p)} for p in more]
    elif present(hf_dir / "chat_template.json"):
        doc = read_json_optional(hf_dir / "chat_template.json", "chat template") or {}
        alt = _template_value(doc.get("chat_template"), hf_dir / "chat_template.json", "chat_template")
    if "chat_template" in tconf:  # as gguf's SpecialVocab: tokenizer_config.json's, even null, comes first
        return _template_value(tconf["chat_template"], tconf_path, "chat_template")
    return alt


def load_vocab(hf_dir: Path, vocab_size: int | None) -> Vocab:
    """The full vocabulary for `hf_dir`. Raises TokenizerError when unusable for a Gemma chat model."""
    hf_dir = Path(hf_dir)
    tokens, scores, types = _sentencepiece_vocab(hf_dir, vocab_size)
    vocab = Vocab(tokens, scores, types)
    _special_tokens(hf_dir, vocab)
    vocab.chat_template = _chat_template(hf_dir)
    present = {t: i for i, t in enumerate(tokens) if t in TURN_TOKENS}
    missing = [t for t in TURN_TOKENS if t not in present]
    if missing:
        raise TokenizerError(
            f"The tokenizer in {hf_dir} lacks the Gemma turn tokens {' and '.join(missing)}: this is not a Gemma 3 "
            "chat tokenizer, and the converted model could not be prompted in chat form. Use the tokenizer files "
            "that came with the model."
        )
    for t, i in present.items():
        if types[i] not in (CONTROL, USER_DEFINED):
            vocab.warnings.append(f"The turn token {t} (id {i}) is an ordinary token in this tokenizer; llama.cpp "
                                  "will not treat it as a special token.")
    if vocab.chat_template is None:
        vocab.warnings.append("The model folder has no chat template (tokenizer_config.json, chat_template.jinja "
                              "or chat_template.json); the GGUF has none either, so chat falls back to medcal's "
                              "Gemma template.")
    for typ in ("bos", "eos"):
        if typ not in vocab.special_ids:
            vocab.warnings.append(f"No {typ.upper()} token id was found in the tokenizer files or config.json; "
                                  "llama.cpp will use its default.")
    return vocab


def tokenizer_files(hf_dir: Path) -> list[Path]:
    names = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json")
    files = [hf_dir / n for n in names if (hf_dir / n).is_file()]
    extra = hf_dir / "additional_chat_templates"
    if extra.is_dir():
        files += sorted(extra.glob("*.jinja"))
    return files
