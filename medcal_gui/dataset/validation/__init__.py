"""Checking a formatted calibration file: the seed's checklist, narrative checks, PHI scan, and what they
found (`results`: the report and its checklist rows, imported by each of them)."""
