"""One module per `medcal` subcommand (see `medcal_gui.cli.main`)."""
