"""The engine: llama.cpp work without Qt (importance matrix, quantization, tiny test models).

Every long job here is a plain function taking `progress` and `cancel` (see `medcal_gui.jobs`); ctypes lives
only in `ggml_ctypes.py`.
"""
