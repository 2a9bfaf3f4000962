"""`python -m medcal_gui` opens the GUI, like `medcal` with no subcommand."""

import sys

from medcal_gui.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
