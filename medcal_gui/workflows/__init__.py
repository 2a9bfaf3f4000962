"""Steps chained for a user: pipeline, calibrate-then-quantize, calibration A/B, self-test, the checks every long
step runs first (`preflight`); the quant ladder (`ladder/`), the per-tensor recipe (`recipe/`) and the hand-over
(`handover/`) in folders of their own."""
