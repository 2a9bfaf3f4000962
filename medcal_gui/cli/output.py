"""How every subcommand prints its result: `--json` documents and warnings, in one style."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def print_json(doc: Any) -> None:
    """A `--json` result on stdout: indented, non-ASCII text as it is."""
    print(json.dumps(doc, indent=2, ensure_ascii=False))


def print_warnings(warnings: Iterable[str]) -> None:
    for w in warnings:
        print(f"warning: {w}")
