"""GGUF files on disk: checks, model facts, the demo model, and the memory and disk a step needs."""
