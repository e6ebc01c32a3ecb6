"""`python cli.py ...` is the same as the installed `enhance` command."""

import sys

from enhance.cli import main

if __name__ == "__main__":
    sys.exit(main())
