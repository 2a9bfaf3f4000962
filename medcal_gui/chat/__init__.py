"""Chat sessions with a model: templates, presets, streaming generation."""
