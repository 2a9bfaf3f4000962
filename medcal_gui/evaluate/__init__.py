"""Fidelity of a quant against its base: KL divergence, perplexity, the base-pass cache, speed."""
