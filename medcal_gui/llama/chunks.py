"""How llama-imatrix and llama-perplexity cut a tokenized text into chunks: the one rule, for the token count,
the importance matrix, the evaluation and the Quantize pane's summary (`ChunkContext.decode_chunk` decodes one).

`n_tokens // n_ctx` whole chunks of `n_ctx` tokens; the tail that does not fill one is dropped. A limit
(`--chunks N`) runs the first N of them, at least one; None runs them all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkPlan:
    n_tokens: int
    n_ctx: int
    limit: int | None = None

    @property
    def available(self) -> int:
        """Whole chunks in the text."""
        return self.n_tokens // self.n_ctx

    @property
    def n_chunks(self) -> int:
        """Chunks a run decodes: all, or the first `limit` (at least one); 0 when the text fills none."""
        if self.limit is None or self.available == 0:
            return self.available
        return max(1, min(self.limit, self.available))

    @property
    def tokens_used(self) -> int:
        return self.n_chunks * self.n_ctx

    @property
    def tokens_dropped(self) -> int:
        """Tokens never decoded: the tail, and the chunks past the limit."""
        return self.n_tokens - self.tokens_used

    def chunks(self, tokens: np.ndarray) -> Iterator[np.ndarray]:
        """The chunks of `tokens` a run decodes, in order (views, not copies)."""
        for i in range(self.n_chunks):
            yield tokens[i * self.n_ctx: (i + 1) * self.n_ctx]
