"""GGUF files on disk: checks, model facts, the demo model, and the memory and disk a step needs."""

# Here, not in demo_model.py, so the command line can name it without importing numpy and gguf.
DEMO_MODEL_LABEL = "Gemma 3 270M, dequantized from Q4_K_M: a demo stand-in for MedGemma"
