"""medcal: take a medical LLM from weights on disk to a quantized GGUF you can trust, offline."""

import os as _os

__version__ = "0.1.0"

# medcal does no BLAS work (llama.cpp does the arithmetic, with threads of its own), yet every process that
# imports numpy got OpenBLAS's worker threads, one per core, which spin about 0.1 s before they sleep: a
# `medcal quantize` and its child spent 0.2 s of CPU on them during their start-up, on the 2 cores llama.cpp
# was about to use (perf, 2026-12-06). With one thread OpenBLAS starts none. Set before numpy is imported
# (this package's modules import it); a user's own setting is kept.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
