"""Does the quant still answer like its base: greedy agreement, clinical facts, multiple choice."""
