"""Where mlsd keeps its state (``MLSD_HOME``) and where it looks for datasets (``MLSD_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The directory for logs, stores and runs: ``$MLSD_HOME`` or ``./runs``."""
    return Path(os.environ.get("MLSD_HOME", "runs")).resolve()


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The dataset root: ``explicit`` (``--data``) wins over ``$MLSD_DATA_DIR``; ``None`` when neither is set."""
    value = explicit if explicit is not None else os.environ.get("MLSD_DATA_DIR")
    return Path(value).resolve() if value else None
