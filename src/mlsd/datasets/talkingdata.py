"""TalkingData AdTracking clicks: the event schema, and a synthetic generator of the same shape."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlsd.events.schema import EventSchema

TALKINGDATA_SCHEMA = EventSchema(
    "talkingdata_click",
    {
        "ip": pa.int64(), "app": pa.int32(), "device": pa.int32(), "os": pa.int32(), "channel": pa.int32(),
        "click_time": pa.string(), "attributed_time": pa.string(), "is_attributed": pa.int8(),
    },
    timestamp_field="click_time",
    timestamp_format="%Y-%m-%d %H:%M:%S",
    optional=frozenset({"attributed_time"}),
)


def synthetic_clicks(n: int, *, seed: int = 0, days: int = 4) -> pa.Table:
    """Clicks with TalkingData's columns (as text, like the CSV): heavy-tailed ips, a few popular apps.

    Used when no data directory is given; it exercises the same pipeline, not the real distribution.
    """
    rng = np.random.default_rng(seed)
    ip = rng.zipf(1.3, n) % 50_000
    app = rng.zipf(1.6, n) % 300
    start = np.datetime64("2017-11-06T00:00:00")
    seconds = np.sort(rng.integers(0, days * 86400, n))
    times = (start + seconds.astype("timedelta64[s]")).astype(str)
    attributed = (rng.random(n) < 0.002 + 0.02 * (app == 19)).astype(np.int8)
    return pa.table({
        "ip": ip.astype(str), "app": app.astype(str), "device": (rng.zipf(2.0, n) % 50).astype(str),
        "os": (rng.zipf(1.8, n) % 100).astype(str), "channel": rng.integers(100, 500, n).astype(str),
        "click_time": pa.array([t.replace("T", " ") for t in times.tolist()]),
        "attributed_time": pa.nulls(n, pa.string()), "is_attributed": attributed.astype(str),
    })
