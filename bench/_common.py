"""What the llama.cpp benchmarks share: the repository on sys.path and the chunked-run arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def chunk_args(doc: str | None, *models: str) -> argparse.ArgumentParser:
    """A parser with one path option per name in `models` and --text, --ctx, --chunks, --repeat, --threads."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in models:
        ap.add_argument(f"--{name}", type=Path)
    ap.add_argument("--text", type=Path)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    return ap
