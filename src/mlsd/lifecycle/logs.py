"""Quiet output: mlsd's own lines on the console, third-party warnings and INFO lines in a log file.

Libraries talk a lot (MLflow's table creation, alembic, torch and scikit-learn warnings). A user's
console shows mlsd's progress and results only; everything else, with Python warnings, goes to
``HOME/logs/mlsd.log`` when the command has a home, and is dropped otherwise. ``--verbose`` also
shows mlsd's own INFO lines and every library's warnings on the console; ``--quiet`` keeps only
warnings and errors of mlsd.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

LOG_FILE = Path("logs") / "mlsd.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _OwnLines(logging.Filter):
    """Console filter: mlsd's records, and (``verbose``) every other library's warnings."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "mlsd" or record.name.startswith("mlsd."):
            return True
        return self.verbose and record.levelno >= logging.WARNING


def configure(home: Path | None, *, verbose: bool = False, quiet: bool = False, libraries: bool = False) -> Path | None:
    """Set up the console and file handlers once per process; returns the log file (None without a home).

    ``libraries``: also route LightGBM's native log (commands that train or serve; it costs an import).
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow otherwise installs its own console handler (INFO, not propagated) when first imported
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mlsd", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # each distinct warning once, into the log
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING if quiet else logging.INFO if verbose else logging.WARNING)
    console.addFilter(_OwnLines(verbose))
    console.setFormatter(logging.Formatter("mlsd: %(levelname)s %(name)s: %(message)s"))
    console._mlsd = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if libraries:
        import lightgbm

        # LightGBM's native messages ("[Warning] Met categorical feature which contains sparse
        # values", once per fit) otherwise go straight to stdout, between mlsd's result lines.
        lightgbm.register_logger(logging.getLogger("lightgbm"))
    if home is None or not home.is_dir():
        return None
    path = home / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(path, encoding="utf-8")
    file.setLevel(logging.INFO)
    file.setFormatter(logging.Formatter(_FORMAT))
    file._mlsd = True  # type: ignore[attr-defined]
    root.addHandler(file)
    return path
