"""``python -m tracker.bench``: the speed benchmark's command (:mod:`tracker.eval.bench`)."""

import sys

from .eval.bench import main

if __name__ == "__main__":
    sys.exit(main())
