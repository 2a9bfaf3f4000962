"""Checking a formatted calibration file: the seed's checklist, narrative checks, PHI scan."""
