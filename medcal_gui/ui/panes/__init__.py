"""One pane per workflow step; see `base.Pane`."""
