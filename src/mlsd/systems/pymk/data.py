"""SNAP ego-Facebook (an undirected friendship graph) and SNAP CollegeMsg (timestamped messages).

``facebook_combined.txt`` lists one undirected edge ``u v`` per line over nodes 0..4038;
``CollegeMsg.txt`` one message ``src dst unix_ts`` per line. A friendship is an event
``(user_id, friend_id, ts)`` with ``user_id < friend_id``; the Facebook graph has no times, so its
edges carry the collection's time (:data:`COLLECTED_S`) and new friendships sent to the service
carry theirs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.datasets import locate
from mlsd.events import EventSchema

FACEBOOK = "snap-ego-facebook"
COLLEGEMSG = "snap-collegemsg"
COLLECTED_S = 1_341_100_800  # 2012-07-01, when ego-Facebook was published
EDGE_SCHEMA = EventSchema("friendship", {"user_id": pa.int64(), "friend_id": pa.int64(), "ts": pa.int64()},
                          timestamp_field="ts")


def _read_ints(path: Path, columns: int) -> np.ndarray:
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise MlsdError(f"{path}: not {columns} integers per line ({exc})") from None
    if values.shape[1] != columns:
        raise MlsdError(f"{path}: expected {columns} columns, found {values.shape[1]}")
    return values


def facebook_edges(root: str | os.PathLike[str] | None) -> np.ndarray:
    """The checksum-verified ego-Facebook edges as an (m, 2) array, each ``u < v``, each edge once."""
    edges = _read_ints(locate(FACEBOOK, root)["facebook_combined.txt"], 2)
    return np.unique(np.sort(edges, axis=1), axis=0)


def college_messages(root: str | os.PathLike[str] | None) -> np.ndarray:
    """The checksum-verified CollegeMsg messages as (src, dst, ts) rows in time order."""
    messages = _read_ints(locate(COLLEGEMSG, root)["CollegeMsg.txt"], 3)
    return messages[np.argsort(messages[:, 2], kind="stable")]


def edge_events(edges: np.ndarray, at_s: int = COLLECTED_S) -> pa.Table:
    return pa.table({"user_id": pa.array(edges[:, 0], pa.int64()), "friend_id": pa.array(edges[:, 1], pa.int64()),
                     "ts": pa.array(np.full(len(edges), at_s), pa.int64())})
