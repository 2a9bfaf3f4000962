"""The data half of medcal (no Qt): decode, parse, format, validate and export clinical narratives."""
