"""GGUF files on disk, read without llama.cpp: the quick header reader (`gguf_header`), the checks that refuse a
damaged file with a plain reason (`gguf_check`, and `model_header`: the quick reader, falling back on the
checks' explanation), and the demo model, a GGUF prepared from a PyPI package (`demo_model`)."""

# Here, not in demo_model.py, so the command line can name it without importing numpy and gguf.
DEMO_MODEL_LABEL = "Gemma 3 270M, dequantized from Q4_K_M: a demo stand-in for MedGemma"
