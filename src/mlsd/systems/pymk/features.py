"""PYMK's feature views: friendships as a stream view, and the batch-precomputed friend lists.

``user_friends`` (per user, from the friendship events, each friendship written once per side):
the user's friend count (degree) and latest friends, kept fresh by the stream processor as new
friendships arrive. ``pymk_lists`` (per user, a batch feature view over the directory of the
precompute's Parquet table and the service's refreshes): how many friends are listed, the top
:data:`LIST_K` suggested friends and their scores, materialized to the online store, where the
service reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlsd.events import EventLog
from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource, Feature, FeatureView, TableSource
from mlsd.features.definitions import AnyView

USER = Entity("user", ("user_id",))
LIST_K = 20
FRIENDS_VIEW = "user_friends"
LISTS_VIEW = "pymk_lists"
LISTS_FILE = "lists.parquet"  # the batch precompute's table; refreshed users' lists are later files beside it
# Online-store meta: how many friendship events (the log's first N) the served lists reflect.
LISTS_POSITION = "pymk_lists:events"
# Online-store meta: the registered model version that made the served lists.
LISTS_VERSION = "pymk_lists:version"
# The lists view's features, in the order of its online row: how many are listed, their ids, their scores.
LIST_FEATURES = ("size", *(f"friend_{n}" for n in range(1, LIST_K + 1)), *(f"score_{n}" for n in range(1, LIST_K + 1)))
COMPACT_AFTER = 64  # refresh files merged into one once there are this many


def pymk_views(log: EventLog, lists_dir: Path) -> list[AnyView]:
    return [
        AggregationView(FRIENDS_VIEW, (USER,), EventLogSource(log), (
            Aggregation("count", name="friends"),
            *(Aggregation("nth_last", "friend_id", n=n, name=f"latest_friend_{n}") for n in (1, 2, 3)))),
        FeatureView(LISTS_VIEW, (USER,), TableSource(str(lists_dir)), tuple(Feature(f) for f in LIST_FEATURES)),
    ]


def write_lists(lists: dict[int, tuple[np.ndarray, np.ndarray]], at_us: int, directory: Path,
                name: str = LISTS_FILE) -> Path:
    """The precomputed lists as a file of the ``pymk_lists`` table: ``size`` friends listed (0: none to suggest),
    NaN past them."""
    users = np.array(sorted(lists), np.int64)
    friends = np.full((len(users), LIST_K), np.nan)
    scores = np.full((len(users), LIST_K), np.nan)
    for row, user in enumerate(users.tolist()):
        ids, values = lists[user]
        friends[row, : len(ids)] = ids[:LIST_K]
        scores[row, : len(values)] = values[:LIST_K]
    directory.mkdir(parents=True, exist_ok=True)
    sizes = np.array([min(len(lists[user][0]), LIST_K) for user in users.tolist()], np.float64)
    table = pa.table({"user_id": users, "size": sizes, **{f"friend_{n + 1}": friends[:, n] for n in range(LIST_K)},
                      **{f"score_{n + 1}": scores[:, n] for n in range(LIST_K)},
                      "event_timestamp": pa.array(np.full(len(users), at_us), pa.int64()).cast(
                          pa.timestamp("us", tz="UTC"))})
    return _write(table, directory / name)


def _write(table: pa.Table, path: Path) -> Path:
    partial = path.with_suffix(".partial")  # not *.parquet: the view never reads a half-written file
    pq.write_table(table, partial)
    partial.replace(path)
    return path


def compact_lists(directory: Path, limit: int = COMPACT_AFTER) -> int:
    """Merge the refreshes' files into one once there are ``limit`` of them; returns how many were merged.

    Every refresh adds a small file and each materialization opens every file of the view, so without
    this a long-running service's refreshes would grow without bound. Rows and their event times are
    kept as they are (the view's history is unchanged); call it only on files already materialized.
    A crash between writing the merged file and removing its sources leaves rows twice, with equal
    values and times, which the next merge drops.
    """
    files = sorted(directory.glob("refresh-*.parquet")) + sorted(directory.glob("compacted-*.parquet"))
    if sum(f.name.startswith("refresh-") for f in files) < limit:
        return 0
    table = pa.concat_tables([pq.read_table(f) for f in files])
    first = table.append_column("_row", pa.array(np.arange(table.num_rows))).group_by(
        ["user_id", "event_timestamp"], use_threads=False).aggregate([("_row", "min")])
    table = table.take(pa.array(np.sort(first["_row_min"].to_numpy())))  # one row per user and time
    newest = pc.max(table["event_timestamp"].cast(pa.int64())).as_py()
    _write(table, directory / f"compacted-{newest}.parquet")
    for f in files:
        if f.name != f"compacted-{newest}.parquet":
            f.unlink()
    return len(files)
