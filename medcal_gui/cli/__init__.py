"""The `medcal` command line: the parser, the progress bar, one module per subcommand."""
