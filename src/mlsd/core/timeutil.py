"""Time conventions: every timestamp inside mlsd is UTC, with microsecond resolution.

In Arrow that is ``timestamp("us", tz="UTC")``; on hot paths it is a plain ``int`` or ``int64`` array of
microseconds since the epoch.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
US_PER_S = 1_000_000


def now_us() -> int:
    """Wall-clock time in epoch microseconds."""
    return time.time_ns() // 1_000


def to_us(value: datetime | timedelta | int | float) -> int:
    """Epoch microseconds of a datetime (naive means UTC), or the length of a timedelta in microseconds."""
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * US_PER_S + value.microseconds
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return to_us(delta)
    return int(value)


def from_us(value: int) -> datetime:
    """The UTC datetime of epoch microseconds."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def utc_text(seconds: float | None) -> str | None:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS UTC`` for people (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_duration(text: str | timedelta) -> timedelta:
    """Parse ``"10m"``, ``"1h"``, ``"1d"``, ``"30s"``, ``"500ms"`` (or pass a timedelta through)."""
    if isinstance(text, timedelta):
        return text
    units = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
    stripped = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if stripped.endswith(suffix):
            number = stripped[: -len(suffix)].strip()
            try:
                return timedelta(seconds=float(number) * units[suffix])
            except ValueError:
                break
    raise ValueError(f"cannot parse duration {text!r}: use a number and one of {sorted(units)}, e.g. '10m'")


def duration_label(value: timedelta) -> str:
    """Short label used in feature names: 600 s -> ``10m``, 86400 s -> ``1d``."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
