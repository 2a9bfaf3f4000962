"""Reusable widgets the panes arrange: tables, previews, fields, the log dock."""
