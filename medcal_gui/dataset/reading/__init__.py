"""Reading narratives: files of any encoding, split into records, with per-line issues."""
