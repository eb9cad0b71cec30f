"""Request parsing + validation per route: the hand-written validator (after ``json`` or orjson) vs msgspec.

Four ways to turn a raw body into checked Python values, on the bodies each system's route takes
(ads: 100 candidates; recs: one user; search: 100 documents with their 46 features; labels: 1,000
ranking labels): ``json.loads`` + ``validate`` (the service before this change), ``orjson.loads`` +
``validate``, ``BodyDecoder`` (msgspec parse + ``convert`` against the compiled schema, what the
service uses now) and msgspec's typed decode straight into the Struct (no plain dicts out).
Prints one JSON object: microseconds per body and each way's speed-up over the first.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path
from typing import Any

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit
from mlsd.serving.decode import BodyDecoder
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Schema, validate
from mlsd.systems.ads.service import REQUEST_SCHEMA as ADS
from mlsd.systems.recs.serve import REQUEST_SCHEMA as RECS
from mlsd.systems.search.data import FEATURES
from mlsd.systems.search.serve import REQUEST_SCHEMA as SEARCH


def bodies() -> dict[str, tuple[Schema, dict[str, Any]]]:
    return {
        "ads": (ADS, {"timestamp": 1.5e9, "context": {"ip": 5, "device": 1, "os": 19},
                      "candidates": [{"app": i, "channel": 100 + i} for i in range(100)]}),
        "recs": (RECS, {"user_id": 17, "k": 10, "timestamp": 8.9e8, "context": {"age": 30, "gender": "F"}}),
        "search": (SEARCH, {"query_id": 10002, "documents": [
            {"doc_id": f"GX{i:06d}", "features": {f: 0.001 * (i + j) for j, f in enumerate(FEATURES)}}
            for i in range(100)]}),
        "labels": (RANKING_LABEL_SCHEMA, {"labels": [{"request_id": f"r-{i // 10}", "item": str(i), "label": i % 3}
                                                     for i in range(1000)], "watermark_s": 8.9e8}),
    }


def per_body_us(fn: Any, seconds: float = 0.5) -> float:
    number = max(1, int(seconds / max(timeit.timeit(fn, number=3) / 3, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    result: dict[str, Any] = {}
    for route, (schema, body) in bodies().items():
        raw = json.dumps(body).encode()
        decoder = BodyDecoder(schema, route)
        typed = msgspec.json.Decoder(decoder.type)
        assert decoder.decode(raw) == validate(orjson.loads(raw), schema) == json.loads(raw)
        ways = {"json_validate": lambda: validate(json.loads(raw), schema),  # noqa: B023
                "orjson_validate": lambda: validate(orjson.loads(raw), schema),  # noqa: B023
                "msgspec_convert": lambda: decoder.decode(raw),  # noqa: B023
                "msgspec_typed": lambda: typed.decode(raw)}  # noqa: B023
        times = {name: per_body_us(fn) for name, fn in ways.items()}
        base = times["json_validate"]
        result[route] = {"bytes": len(raw), **{f"{k}_us": round(v, 2) for k, v in times.items()},
                         **{f"{k}_speedup": round(base / v, 2) for k, v in times.items() if k != "json_validate"}}
    emit("request_decode", result)


if __name__ == "__main__":
    main()
