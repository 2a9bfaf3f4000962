"""An Ollama `Modelfile` for a published GGUF: `FROM ./file.gguf`, Gemma's chat template in Ollama's Go
template syntax (the one Ollama's own gemma3 model ships, kept in resources/ollama_gemma3_template.txt), the
stop token, and the mmproj as a second `FROM` so vision keeps working.

Format (Ollama's docs/modelfile.md): one instruction per line (FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER,
LICENSE, MESSAGE), a value in triple quotes may span lines, `#` starts a comment.
"""

from __future__ import annotations

import functools

from medcal_gui.core.markers import TURN_END
from medcal_gui.core.resources import resources_dir

TEMPLATE_FILE = "ollama_gemma3_template.txt"
STOP_TOKENS = (TURN_END,)


@functools.cache
def ollama_gemma_template() -> str:
    return (resources_dir() / TEMPLATE_FILE).read_text(encoding="utf-8").rstrip("\n")


def render_modelfile(gguf_name: str, *, mmproj_name: str | None = None, license_name: str | None = None,
                     source_note: str = "") -> str:
    """The Modelfile's text; file names are relative to the folder it sits in (`ollama create -f` there)."""
    template = ollama_gemma_template()
    if '"""' in template:
        raise ValueError("the Ollama template may not contain triple quotes")
    lines = [f"# Ollama Modelfile for {gguf_name}" + (f" ({source_note})" if source_note else ""),
             f"# Create the model here with: ollama create {gguf_name.removesuffix('.gguf').lower()} "
             f"-f {modelfile_name(gguf_name)}",
             f"FROM ./{gguf_name}"]
    if mmproj_name:
        lines.append(f"FROM ./{mmproj_name}")
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop "{s}"' for s in STOP_TOKENS]
    if license_name and '"""' not in license_name:
        lines.append(f'LICENSE """{license_name}"""')
    return "\n".join(lines) + "\n"


def modelfile_name(gguf_name: str) -> str:
    return gguf_name.removesuffix(".gguf") + ".Modelfile"
