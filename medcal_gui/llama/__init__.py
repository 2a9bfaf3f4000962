"""The edge to llama.cpp: the only ctypes, its log, contexts, CPU quirks and the tiny model they probe with."""
