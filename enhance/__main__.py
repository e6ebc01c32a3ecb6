"""`python -m enhance ...` is the same as the installed `enhance` command."""

import sys

from enhance.cli import main

sys.exit(main())
