"""Quantization through llama_model_quantize in a child process, and the quant-type rules."""
