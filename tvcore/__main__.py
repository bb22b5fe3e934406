"""``python -m tvcore``: the same command line as the ``tvcore`` console script."""

import sys

from .cli import entry

if __name__ == "__main__":
    sys.exit(entry())
