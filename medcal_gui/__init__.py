"""medcal: take a medical LLM from weights on disk to a quantized GGUF you can trust, offline."""

__version__ = "0.1.0"
