"""The feature-log record: what a service writes for every scored request, and the monitor and skew check read.

One typed record for every system (a msgspec Struct, checked when read back). It is written by
orjson (:func:`encode_record`): on float-heavy records that is ~20% faster than msgspec's encoder
(166 vs 209 us for 100 candidates x 40 features), and it writes NaN as null; msgspec reads it back
(3x faster than ``json.loads``).
Per-candidate values are lists in candidate order: a ranking service lists its items in the order
shown, with their features and scores in the same order. What only one system logs goes in ``extra``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

CONTROL_ARM = "champion"


class FeatureLogRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One scored request."""

    request_id: str
    at_us: int  # event time of the request, microseconds since the epoch
    model_version: str
    predictions: list[float | None]  # one per candidate (null: not scored)
    features: dict[str, list[float | None]] = {}  # the model's inputs per candidate (null: missing)
    entities: dict[str, list[Any]] = {}  # entity keys per candidate, as the feature store reads them
    request: dict[str, Any] = {}  # request-time inputs of on-demand features (a value, or one per candidate)
    arm: str = CONTROL_ARM
    items: list[str | int] = []  # ranking: the shown items, best first
    extra: dict[str, Any] = {}  # system-specific facts (path taken, stages, timings)


def encode_record(record: FeatureLogRecord) -> bytes:
    """One JSON line's bytes (no newline); numpy values are written as numbers, NaN as null."""
    return orjson.dumps(msgspec.structs.asdict(record), option=orjson.OPT_SERIALIZE_NUMPY)


DECODER = msgspec.json.Decoder(FeatureLogRecord)
