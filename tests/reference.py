"""Brute-force Python references for point-in-time lookups and windowed aggregates (test oracles)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def latest_row(rows: Sequence[dict[str, Any]], key: Any, t: int, ttl: int | None) -> dict[str, Any] | None:
    """The row of ``key`` with the greatest (ts, created) such that ts <= t and, with a TTL, ts >= t - ttl."""
    best = None
    for row in rows:
        if row["key"] != key or row["ts"] > t or (ttl is not None and row["ts"] < t - ttl):
            continue
        if best is None or (row["ts"], row["created"]) > (best["ts"], best["created"]):
            best = row
    return best


def aggregate(events: Sequence[dict[str, Any]], key: Any, t: int, function: str, window: int | None,
              n: int = 1) -> float:
    """Aggregate over events of ``key`` with time in [t - window, t); NaN where the offline store gives NULL."""
    inside = [e for e in events if e["key"] == key and e["ts"] < t and (window is None or e["ts"] >= t - window)]
    if function == "count":
        return float(len(inside))
    if function == "sum":
        return float(sum(e["value"] for e in inside))
    if function == "distinct_count":
        return float(len({e["category"] for e in inside}))
    if not inside:
        return math.nan
    if function == "mean":
        return sum(e["value"] for e in inside) / len(inside)
    latest_first = sorted(inside, key=lambda e: (e["ts"], e["event_id"]), reverse=True)
    if function == "nth_last":
        return float(latest_first[n - 1]["value"]) if len(latest_first) >= n else math.nan
    last = latest_first[0]
    if function == "last":
        return float(last["value"])
    if function == "time_since_last":
        return (t - last["ts"]) / 1e6
    raise ValueError(function)
