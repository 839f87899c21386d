"""``python -m shotflow.testing``: the same as ``python -m shotflow.testing.emulator``."""

import sys

from .emulator import main

sys.exit(main())
