"""Steps chained for a user: pipeline, calibrate-then-quantize, calibration A/B, self-test."""
