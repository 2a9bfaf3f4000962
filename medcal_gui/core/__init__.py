"""Facts and helpers every layer shares: errors, the job protocol, safe file writes, resources."""
