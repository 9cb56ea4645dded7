"""``python -m tracker.evaluate``: the accuracy benchmark's command (:mod:`tracker.eval.evaluate`)."""

import sys

from .eval.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
