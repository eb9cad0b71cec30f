"""``python -m mlsd.cli``."""

import sys

from mlsd.cli import main

sys.exit(main())
