"""``python -m mlsd``: the command line."""

from mlsd.cli import main

raise SystemExit(main())
