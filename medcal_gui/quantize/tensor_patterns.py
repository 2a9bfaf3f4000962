"""Which `--tensor-type` patterns medcal accepts: those llama.cpp reads as Python does, and whose matching
time is bounded, checked before any tensor name is matched.

llama.cpp matches each pattern with `std::regex_search` (libstdc++, ECMAScript grammar) against every
quantized tensor's name, in the quantize process, where nothing can interrupt it; medcal matches the same
patterns with Python's `re` to say what each rule sets. Both are backtracking engines: a pattern such as
`(.*.*.*.*)*z` tries every way of splitting a name between its repeats and ran for 11 minutes (measured with
libstdc++ 13: `(.|.)` eighteen times took 55 s over the 806 names of a 62-layer model, `.*.*.*z` 0.26 s). So
a pattern is refused up front when

- it repeats a group that itself holds a repeat or a `|` (`(a+)+`, `(.*)*`, `(a|b)*`): the number of ways
  grows exponentially with the name's length; a repeat right after a repeat (`a*+`, possessive in Python)
  is the same shape for llama.cpp;
- its repeats and alternatives allow too many ways: every repeat (`*`, `+`, `?`, `{m,n}`) counts as 64 ways
  (a tensor name has at most 63 characters, GGML_MAX_NAME), a group of alternatives as 64 times the ways
  of its alternatives together, and their product must stay within 64^3 = 262,144 (three repeats); all the
  rules of one quantization together within twice that. The worst patterns this admits, `.*.*.*z` and
  `(.*|.*|...32 times)z`, take libstdc++ about 0.3 s over those 806 names;
- a repeat count is over 64, or the pattern over 1,024 characters (llama.cpp's NFA has at most 100,000
  states; `x{100000}` makes it throw);
- it uses syntax the two engines read differently: Python-only groups and escapes, `[]`/`[^]` (an empty
  class in ECMAScript, a `]` in Python), POSIX classes `[[:digit:]]`, `{` that is not a repeat, non-ASCII
  characters (llama.cpp matches bytes, Python characters) and control characters (a NUL ends the C string).
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

from medcal_gui.core.errors import InputError

MAX_PATTERN_CHARS = 1024
REPEAT_WAYS = 64  # a tensor name has at most 63 characters: a repeat can take at most 64 lengths
MAX_WAYS = REPEAT_WAYS**3  # one pattern
MAX_WAYS_ALL = 2 * MAX_WAYS  # all the rules of one quantization
MAX_COUNT = 64  # the largest m, n in {m,n}

# What llama.cpp's std::regex (ECMAScript grammar) lacks though Python's re has it: refused up front, since
# llama.cpp would otherwise fail with "failed to quantize: regex_error" or read it differently.
_NOT_ECMASCRIPT = re.compile(r"\(\?(?:<[=!]|P|#|>|\(|[aiLmsux-])|\\[AZz]")
_BRACE = re.compile(r"\{(\d+)(,(\d*))?\}")
_IDEAS = ("Write the repeat once on a character or a class instead, e.g. '.*' or '[a-z_]*'; a leading or "
          "trailing '.*' is never needed, since llama.cpp searches the pattern anywhere in the name.")


@dataclass
class _Group:
    """The group being read: `alts` the ways of its finished alternatives, `seq` the ways of the current
    one without its last item, `last` that item's ways (None before the first), `last_complex` whether that
    item holds a repeat or a `|`, `complex` whether the group does."""

    alts: int = 0
    seq: int = 1
    last: int | None = None
    last_complex: bool = False
    last_repeated: bool = False
    complex: bool = False
    bars: int = 0

    def commit(self) -> None:
        if self.last is not None:
            self.seq *= self.last

    def push(self, ways: int, complex_: bool) -> None:
        self.commit()
        self.last, self.last_complex, self.last_repeated = ways, complex_, False
        self.complex |= complex_

    def ways(self) -> int:
        self.commit()
        self.last = None
        total = self.alts + self.seq
        # each alternative is tried at each point, and one holding a repeat again at each length:
        # `(.*|.*|...)(.*)z` took 6.8 s over 806 names when counted as its alternatives alone
        return REPEAT_WAYS * total if self.bars else total


def _class_end(p: str, i: int, where: str) -> int:
    """The index after the `]` closing the class opened at p[i]."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        raise InputError(f"{where}: the pattern {p!r} starts a class with ']' ('[]' or '[^]'), which llama.cpp "
                         "reads as an empty class and Python as a ']'. Write '\\]' for a ']' inside [...].")
    while j < len(p) and p[j] != "]":
        if p[j] == "\\":
            j += 1
        elif p[j] == "[" and p[j + 1:j + 2] in (":", "=", "."):
            raise InputError(f"{where}: the pattern {p!r} uses a POSIX class ('[:', '[=' or '[.'), which llama.cpp "
                             "and Python read differently. Write the characters out, e.g. [0-9] or [a-z].")
        j += 1
    return j + 1


def _too_costly(p: str, ways: int, where: str) -> InputError:
    return InputError(f"{where}: the pattern {p!r} can match a tensor name in too many ways (about {ways:.1e}; "
                      f"the limit is {MAX_WAYS:,}) and llama.cpp tries them one by one, for every tensor. Use "
                      "at most three repeats (*, +, ?, {m,n}), fewer with groups of alternatives (a|b). " + _IDEAS)


def pattern_ways(p: str, where: str = "--tensor-type") -> int:
    """An upper bound on the ways a backtracking engine may try `p` at each position of a tensor name (see
    the module's docstring); InputError for a shape whose time has no such bound or that llama.cpp and Python
    read differently."""
    stack = [_Group()]
    i = 0
    while i < len(p):
        c = p[i]
        top = stack[-1]
        if c == "\\":
            top.push(1, False)
            i += 2
        elif c == "[":
            i = _class_end(p, i, where)
            top.push(1, False)
        elif c == "(":
            stack.append(_Group())
            i += 3 if p.startswith(("(?:", "(?=", "(?!"), i) else 1
        elif c == ")":
            inner = stack.pop()
            complex_ = inner.complex or inner.bars > 0
            stack[-1].push(inner.ways(), complex_)
            i += 1
        elif c == "|":
            top.commit()
            top.alts += top.seq
            top.seq, top.last, top.bars, top.complex = 1, None, top.bars + 1, True
            i += 1
        elif c in "*+?" or (c == "{" and _BRACE.match(p, i)):
            if c == "{":
                m = _BRACE.match(p, i)
                assert m is not None
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                if lo > MAX_COUNT or (hi is not None and hi > MAX_COUNT):
                    raise InputError(f"{where}: the pattern {p!r} repeats {m.group(0)} times: a tensor name has "
                                     f"at most 63 characters, so write counts of at most {MAX_COUNT}.")
                end = m.end()
            else:
                lo, hi = (0, None) if c == "*" else (1, None) if c == "+" else (0, 1)
                end = i + 1
            if top.last is None:
                raise InputError(f"{where}: the pattern {p!r} has a repeat with nothing before it to repeat.")
            if top.last_repeated:
                raise InputError(f"{where}: the pattern {p!r} repeats a repeat ('{p[i - 1:end]}'): llama.cpp reads "
                                 "it as a repeated group, which can take hours to match, and Python as something "
                                 "else. " + _IDEAS)
            if (hi is None or hi > 1) and top.last_complex:
                raise InputError(f"{where}: the pattern {p!r} repeats a group that itself holds a repeat or a "
                                 "'|' (like '(.*)*' or '(a|b)+'): llama.cpp tries every way of splitting the name "
                                 "between them, which can take hours. " + _IDEAS)
            if hi is None or hi != lo:  # a choice point
                top.last *= REPEAT_WAYS
                top.last_complex = top.complex = True
            elif lo == 0:
                top.last = 1
            top.last_repeated = True
            i = end
            if p[i:i + 1] == "?":  # lazy: the same ways in another order
                i += 1
        elif c == "{":
            raise InputError(f"{where}: the pattern {p!r} has a '{{' that is not a repeat count such as {{2}} or "
                             "{1,3}, which llama.cpp refuses. Write '\\{' for the character.")
        else:
            top.push(1, False)
            i += 1
    ways = stack[0].ways()
    if ways > MAX_WAYS:
        raise _too_costly(p, ways, where)
    return ways


@functools.lru_cache(maxsize=16384)  # 10,000 rules, one per tensor as a recipe writes them: 4 MB
def _compiled(pattern: str) -> re.Pattern[str]:
    with warnings.catch_warnings():  # "possible nested set": refused with a message of ours (_class_end)
        warnings.simplefilter("ignore")
        return re.compile(pattern)


def compiled(pattern: str, where: str = "--tensor-type") -> re.Pattern[str]:
    """`pattern` checked (check_pattern) and compiled, both remembered: a recipe's 10,000 rules are read,
    checked again before quantizing and matched; compiling them each time took 2 of its 3 seconds."""
    check_pattern(pattern, where)
    return _compiled(pattern)


@functools.lru_cache(maxsize=16384)  # a recipe's rules are checked when read, again before quantizing
def check_pattern(pattern: str, where: str = "--tensor-type") -> int:
    """InputError unless `pattern` is a regular expression llama.cpp's std::regex reads as Python does and
    whose matching time is bounded; returns its ways (pattern_ways)."""
    bad = next((c for c in pattern if not " " <= c < "\x7f"), None)
    if bad is not None:
        kind = "a control character" if bad < " " or bad == "\x7f" else "a non-ASCII character"
        raise InputError(f"{where}: the pattern {pattern!r} holds {kind} ({bad!r}): tensor names are ASCII and "
                         "llama.cpp matches bytes (a NUL ends its pattern), so it would not read it as medcal "
                         "does. Use ASCII characters only.")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InputError(f"{where}: the pattern is {len(pattern):,} characters long; medcal takes at most "
                         f"{MAX_PATTERN_CHARS:,} (a tensor name has at most 63). Split it into several rules.")
    try:
        _compiled(pattern)
    except re.error as exc:
        raise InputError(f"{where}: the pattern {pattern!r} is not a valid regular expression ({exc}).") from None
    except OverflowError:
        raise InputError(f"{where}: the pattern {pattern!r} has a repeat count too large to read: a tensor name has "
                         f"at most 63 characters, so write counts of at most {MAX_COUNT}.") from None
    except RecursionError:
        raise InputError(f"{where}: the pattern {pattern!r} nests groups too deeply to read; simplify it.") from None
    bad_syntax = _NOT_ECMASCRIPT.search(pattern)
    if bad_syntax:
        raise InputError(f"{where}: the pattern {pattern!r} uses {bad_syntax.group(0)!r}, which llama.cpp's "
                         "regular expressions (ECMAScript) do not have. Rewrite it without it.")
    return pattern_ways(pattern, where)
