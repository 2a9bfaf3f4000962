"""Handing a quant over: the publish folder (model card, checksums, Ollama Modelfiles) and the report's content."""
