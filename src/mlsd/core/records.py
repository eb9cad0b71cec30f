"""The feature-log record: what a service writes for every scored request, and the monitor and skew check read.

One typed record for every system (a msgspec Struct: encoded and decoded in C, checked on decode).
Per-candidate values are lists in candidate order: a ranking service lists its items in the order
shown, with their features and scores in the same order. What only one system logs goes in ``extra``.
"""

from __future__ import annotations

from typing import Any

import msgspec

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


def _encode_other(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is None:
        raise NotImplementedError(f"cannot log a {type(value).__name__}")
    return tolist()


ENCODER = msgspec.json.Encoder(enc_hook=_encode_other)
DECODER = msgspec.json.Decoder(FeatureLogRecord)
