"""Text that came from outside (a model's metadata, a manifest, a JSON file of figures, a file name) made safe
for each format the hand-over writes: file names, Ollama Modelfile comments and values, Markdown, YAML front
matter and shell commands. The HTML of the report escapes with `html.escape` on its own.

Why: `general.name` with a newline put `SYSTEM …` and `ADAPTER /etc/passwd` lines into a Modelfile, and a
manifest's type `../../x` made a file name outside the folder. Every value is one line of printable text
here, bounded in length, and escaped for the syntax it lands in.
"""

from __future__ import annotations

import re
import unicodedata

from medcal_gui.core.errors import OutputError

# a file name medcal writes into a hand-over folder: no folder part, no leading dot, nothing a shell, a
# Modelfile or sha256sum reads as syntax
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,179}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
NAME_LIMIT = 80  # the model part of a hub name, `<model>-<TYPE>.gguf`


def one_line(value: object, limit: int = 300) -> str:
    """`value` as one line of printable text: control, format and line/paragraph separator characters (\\n, \\r,
    U+2028, NEL, bidi overrides) become spaces, runs of white space one space, at most `limit` characters."""
    text = str(value)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        out.append(" " if cat[0] == "C" or cat in ("Zl", "Zp") else ch)
    flat = " ".join("".join(out).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def slug(name: str, fallback: str = "model") -> str:
    """A hub-style name part: letters, digits and `._+-` only, no leading or trailing dot or dash, bounded."""
    s = _UNSAFE.sub("-", one_line(name, 1000)).strip("-.")[:NAME_LIMIT].strip("-.")
    return s or fallback


def safe_file_name(name: str, fallback: str) -> str:
    """A user's file name as it may be published: its stem and suffix slugged (a newline, a slash or a leading
    dot never survive)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return slug(name, fallback)
    suf = _UNSAFE.sub("", suffix)[:16]
    return slug(stem, fallback) + ("." + suf if suf else "")


def check_plain_name(name: str, what: str) -> str:
    """Refuse a name that is not a plain file name inside the folder (the last line of defence: every name
    was built from slugs and checked types)."""
    if not PLAIN_NAME.fullmatch(name) or name in (".", ".."):
        raise OutputError(f"medcal refused to write {one_line(name, 120)!r} as the {what}: it is not a plain file "
                          "name (letters, digits, . _ + - only); nothing was written.")
    return name


_MD_SPECIAL = re.compile(r"[\\`*\[\]|~#!$<>&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_ENTITY = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md_text(value: object, limit: int = 300) -> str:
    """One line of Markdown that renders as the text itself: HTML's `<`, `>` and `&` as entities, Markdown's
    emphasis, link, code, table and heading characters backslash-escaped, a leading list marker too."""
    text = one_line(value, limit)
    text = _MD_SPECIAL.sub(lambda m: _MD_ENTITY.get(m.group(0), "\\" + m.group(0)), text)
    return re.sub(r"^([-+=]|\d+(?=[.)]))", lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit()
                  else "\\" + m.group(0), text)


def md_cell(value: object, limit: int = 120) -> str:
    """A Markdown table cell: `md_text`, whose `|` is already escaped."""
    return md_text(value, limit) or "–"


def md_code(value: object, limit: int = 300) -> str:
    """An inline code span holding `value` literally: the fence is longer than any run of backticks in it."""
    text = one_line(value, limit)
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def yaml_quote(value: object, limit: int = 300) -> str:
    """A YAML double-quoted scalar holding `value` as one line: `"` and `\\` escaped, everything outside
    printable ASCII as \\x, \\u or \\U escapes (YAML 1.1 and 1.2 read them alike; C1 controls written raw made
    PyYAML refuse the whole card)."""
    out = ['"']
    for ch in one_line(value, limit):
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif 0xD800 <= o <= 0xDFFF:  # a lone surrogate (bytes decoded with surrogateescape): not text
            out.append("\\ufffd")
        elif o <= 0xFF:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def shell_word(value: object, limit: int = 300) -> str:
    """One shell word (a command line a reader copies): single-quoted unless it is plainly safe."""
    import shlex

    return shlex.quote(one_line(value, limit))
