"""What the window's panes show, computed without Qt: the quantize pane's facts (`quantize_facts`: the paths,
the memory and disk line, the size note) and the verify pane's (`verify_facts`: the KLD reading, the held-out
split). Tested headless; `ui/` only lays them out."""
