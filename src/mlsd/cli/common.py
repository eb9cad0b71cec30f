"""What every ``mlsd`` verb shares: the system's home, the data directory check, console and log file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mlsd.core.paths import home_dir
from mlsd.system import Workspace


def _workspace(args: argparse.Namespace) -> Workspace:
    return Workspace(Path(args.home or home_dir() / args.system))


def _check_data(system_datasets: Sequence[str], data: str | None, command: str) -> None:
    """A data directory given (``--data`` or ``$MLSD_DATA_DIR``) must hold every dataset, verified; else exit 2.

    Without one, say on the first line that the run uses generated data (where the system has it).
    """
    from mlsd.core.errors import DataNotFoundError
    from mlsd.core.paths import data_dir
    from mlsd.datasets import DATASETS, locate

    root = data_dir(data)
    if root is None:
        print(f"{command}: no data directory (--data DIR or $MLSD_DATA_DIR): generated data where the system has "
              "it, else an error", flush=True)
        return
    if not root.is_dir():
        raise DataNotFoundError(f"data directory {root} does not exist")
    problems = []
    for name in system_datasets:
        if name in DATASETS:
            try:
                locate(name, root)
            except DataNotFoundError as exc:
                problems.append(str(exc))
    if problems:
        raise DataNotFoundError(f"{root} is incomplete: " + " | ".join(problems))


def _logs(args: argparse.Namespace, home: Path | None, create: bool = False, trains: bool = True) -> None:
    """Console and log file for this command; ``trains``: it fits or serves models (route LightGBM's log)."""
    from mlsd.core.progress import set_enabled
    from mlsd.lifecycle.logs import configure

    set_enabled(not getattr(args, "quiet", False))
    if home is not None and create:
        home.mkdir(parents=True, exist_ok=True)
    configure(home, verbose=getattr(args, "verbose", False), quiet=getattr(args, "quiet", False),
              libraries=trains)
