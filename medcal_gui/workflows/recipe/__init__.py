"""The recipe search (`medcal recipe`): one quant type per tensor, chosen to minimise the measured,
importance-weighted error under an exact byte budget. `allocate` (the maths), `layout` (the GGUF's exact
size), `candidates` (per tensor and type: bytes and error), `probes` (how much each tensor class's error
costs in KLD), `recipe` (the workflow), `results` (what it gives) and `recipe_report` (JSON, Markdown, SVG)."""
