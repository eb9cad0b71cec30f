"""Progress bars with an ETA for phases longer than a couple of seconds (epochs, folds, replays).

One switch for the whole process: ``mlsd --quiet`` turns every bar off (:func:`set_enabled`). Bars
draw on a terminal only (tqdm's ``disable=None``), so logs and CI output stay free of carriage returns,
and are removed when done (``leave=False``): the result lines that follow are what stays on screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn every progress bar of this process on or off."""
    global _enabled
    _enabled = enabled


def progress(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``items`` with a bar (count, rate, ETA when ``total`` or ``len(items)`` is known)."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False, mininterval=0.5, dynamic_ncols=True,
                    disable=None if _enabled else True)


def counter(*, desc: str, total: int | None, unit: str = "it") -> tqdm[Any]:
    """A bar updated by hand (``.update(n)``, ``.close()``), for work that reports through a callback."""
    return tqdm(desc=desc, total=total, unit=unit, leave=False, mininterval=0.5, dynamic_ncols=True,
                disable=None if _enabled else True)
