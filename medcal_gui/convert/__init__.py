"""Hugging Face Gemma 3 / MedGemma folders to GGUF, without torch."""
