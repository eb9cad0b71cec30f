"""Visual search traffic for replay: each held-out query product's image, one request each.

The shopper's clicks come back as labels: every shown product of the query's article type counts as
relevant (grade 1), so the monitor's online hit rate and nDCG follow the offline same-type metrics.
The build writes the queries (image as base64, article type) to ``traffic.json``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from mlsd.core.atomic import atomic_write_json
from mlsd.core.errors import MlsdError
from mlsd.simulation.replay import JudgedTraffic, ReplayItem
from mlsd.system import Workspace

TRAFFIC_FILE = "traffic.json"
INTERVAL_S = 20
START_S = 1_546_387_200  # 2019-01-02 UTC, a day after the catalogue


def write_traffic(ws: Workspace, products: Any, rows: np.ndarray) -> int:
    queries = [[START_S + n * INTERVAL_S, int(products.ids[i]), str(products.article_type[i]),
                base64.b64encode(products.image_bytes(int(i))).decode()] for n, i in enumerate(rows)]
    atomic_write_json(ws.home / TRAFFIC_FILE, {"queries": queries})
    return len(queries)


def _clicks(article_type: str) -> Any:
    def outcome(answer: dict[str, Any]) -> tuple[list[tuple[str, float]], list[Any]]:
        return [(str(r["product_id"]), 1.0) for r in answer.get("ranked", []) if r["article_type"] == article_type], []
    return outcome


class QueryImageReplay(JudgedTraffic):
    """The held-out query images as replay requests."""

    def __init__(self, ws: Workspace, *, limit: int | None = None) -> None:
        path = ws.home / TRAFFIC_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run visual --home {ws.home}` first")
        self.queries: list[list[Any]] = json.loads(path.read_text())["queries"][:limit]
        self.drift_at_s = None

    @property
    def total(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[ReplayItem]:
        for at_s, _, article_type, image in self.queries:
            yield ReplayItem(float(at_s), {"image": image, "k": 10, "timestamp": at_s}, _clicks(article_type))
