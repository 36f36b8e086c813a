"""``python -m metalearn``: the ``metalearn`` command (``torchrun -m metalearn train ...``)."""

import sys

from metalearn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
