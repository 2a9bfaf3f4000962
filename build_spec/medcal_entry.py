"""Entry script of the stand-alone bundle (PyInstaller): the same `main` as the `medcal` command.

`main()` calls multiprocessing.freeze_support() first, so the quantize child and the CPU probe, which use
the "spawn" start method, re-enter here and run their target instead of the CLI.
"""

import sys

from medcal_gui.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
