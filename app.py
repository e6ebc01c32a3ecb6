"""Start the saga-enhance web app (the same as `enhance serve`):

    python app.py [--host 127.0.0.1] [--port 7860] [--model saga-s] [--device auto] [--allow-untrained]

Everything lives in enhance/webapp.py; this file only reads the command line.
"""

import argparse
import sys

from enhance import webapp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Start the saga-enhance web app.")
    webapp.add_arguments(parser)
    return webapp.main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
