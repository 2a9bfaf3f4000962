"""Token counts and the importance matrix (imatrix) computed in-process."""
