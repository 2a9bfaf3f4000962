"""An Ollama `Modelfile` for a published GGUF: `FROM ./file.gguf`, Gemma's chat template in Ollama's Go
template syntax (the one Ollama's own gemma3 model ships, kept in resources/ollama_gemma3_template.txt), the
stop token, and the mmproj as a second `FROM` so vision keeps working.

Format (Ollama's parser/parser.go): one instruction per line (FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER,
LICENSE, MESSAGE, …), a value in triple quotes may span lines, `#` starts a comment that ends at `\\n` or `\\r`.
Text from a model's metadata (its name, its licence's name) is written as one line of printable text, never
with a quote that could end a value; the rendered file is then parsed the way Ollama parses it and refused
unless it holds exactly the instructions medcal meant (a name with a newline made `SYSTEM …` and
`ADAPTER /etc/passwd` real instructions).
"""

from __future__ import annotations

import functools

from medcal_gui.core.errors import OutputError
from medcal_gui.core.markers import TURN_END
from medcal_gui.core.resources import resources_dir
from medcal_gui.workflows.handover.escaping import check_plain_name, one_line

TEMPLATE_FILE = "ollama_gemma3_template.txt"
STOP_TOKENS = (TURN_END,)
COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
            "message", "requires")


@functools.cache
def ollama_gemma_template() -> str:
    return (resources_dir() / TEMPLATE_FILE).read_text(encoding="utf-8").rstrip("\n")


def _license_value(license_name: str) -> str:
    # one line, and no double quote at all: `"""` would end the value and `"` next to the closing quotes is
    # read differently by different parsers
    return one_line(license_name, 300).replace('"', "'")


def render_modelfile(gguf_name: str, *, mmproj_name: str | None = None, license_name: str | None = None,
                     source_note: str = "") -> str:
    """The Modelfile's text; file names are relative to the folder it sits in (`ollama create -f` there)."""
    check_plain_name(gguf_name, "GGUF the Modelfile names")
    if mmproj_name:
        check_plain_name(mmproj_name, "vision projector the Modelfile names")
    template = ollama_gemma_template()
    if '"""' in template:
        raise ValueError("the Ollama template may not contain triple quotes")
    note = one_line(source_note, 200)
    lines = [f"# Ollama Modelfile for {gguf_name}" + (f" ({note})" if note else ""),
             f"# Create the model here with: ollama create {gguf_name.removesuffix('.gguf').lower()} "
             f"-f {modelfile_name(gguf_name)}",
             f"FROM ./{gguf_name}"]
    expected = [("model", f"./{gguf_name}")]
    if mmproj_name:
        lines.append(f"FROM ./{mmproj_name}")
        expected.append(("model", f"./{mmproj_name}"))
    lines.append(f'TEMPLATE """{template}"""')
    expected.append(("template", template))
    lines += [f'PARAMETER stop "{s}"' for s in STOP_TOKENS]
    expected += [("stop", s) for s in STOP_TOKENS]
    lic = _license_value(license_name) if license_name else ""
    if lic:
        lines.append(f'LICENSE """{lic}"""')
        expected.append(("license", lic))
    text = "\n".join(lines) + "\n"
    got = parse_modelfile(text)
    if got != expected:
        raise OutputError(f"The Modelfile for {gguf_name} would not hold exactly the instructions medcal writes "
                          f"(it parses as {[c for c, _ in got]}); nothing was written.")
    return text


def modelfile_name(gguf_name: str) -> str:
    return gguf_name.removesuffix(".gguf") + ".Modelfile"


def _unquote(s: str) -> tuple[str, bool]:
    if s.startswith('"""'):
        return (s[3:-3], True) if len(s) >= 6 and s.endswith('"""') else ("", False)
    if s.startswith('"'):
        return (s[1:-1], True) if len(s) >= 2 and s.endswith('"') else ("", False)
    return s, True


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(command, value) pairs as Ollama's ParseFile reads `text`: FROM is "model", a PARAMETER is its name.
    A port of its state machine (parser/parser.go), so that what medcal checks is what Ollama will run."""
    out: list[tuple[str, str]] = []
    state, buf, name = "nil", "", ""
    for ch in text + "\n":
        newline, space = ch in "\r\n", ch in " \t"
        if state == "nil":
            if ch == "#":
                state = "comment"
            elif not (newline or space):
                state, buf = "name", ch
        elif state == "comment":
            if newline:
                state = "nil"
        elif state == "name":
            if ch.isascii() and ch.isalpha():
                buf += ch
            elif space and buf.lower() in COMMANDS:
                cmd = buf.lower()
                state, buf = ("param" if cmd == "parameter" else "value"), ""
                name = "model" if cmd == "from" else cmd
            else:
                raise OutputError(f"Not a Modelfile instruction: {one_line(buf + ch, 60)!r}.")
        elif state == "param":
            if ch.isascii() and (ch.isalnum() or ch == "_"):
                buf += ch
            elif space:
                state, name, buf = "value", buf, ""
            else:
                raise OutputError("A Modelfile PARAMETER without a value.")
        elif state == "value":
            if newline or space:
                value, ok = _unquote(buf.strip())
                if ok and not space:
                    out.append((name, value))
                    state, buf = "nil", ""
                    continue
            if ch.isprintable() or ch in "\r\n\t":
                buf += ch
    if state not in ("nil", "comment"):
        raise OutputError("A Modelfile value is not closed.")
    return out
