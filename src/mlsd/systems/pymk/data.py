"""SNAP ego-Facebook (an undirected friendship graph) and SNAP CollegeMsg (timestamped messages).

``facebook_combined.txt`` lists one undirected edge ``u v`` per line over nodes 0..4038;
``CollegeMsg.txt`` one message ``src dst unix_ts`` per line. A friendship is an event
``(user_id, friend_id, ts)`` with ``user_id < friend_id``; the Facebook graph has no times, so its
edges carry the collection's time (:data:`COLLECTED_S`) and new friendships sent to the service
carry theirs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy import sparse

from mlsd.core.errors import MlsdError
from mlsd.datasets import locate
from mlsd.events import EventSchema

FACEBOOK = "snap-ego-facebook"
FACEBOOK_EGOS = "snap-ego-facebook-circles"
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


@dataclass(frozen=True)
class EgoProfiles:
    """What the ego networks say about each node: binary profile attributes and circle memberships.

    ``attributes`` (nodes x attributes): an attribute is a named value ("education;school;anonymized
    feature 538"), the same name in every ego's ``.featnames``, so a node in two ego networks gets the
    union. ``circles`` (nodes x circles): one column per circle of each ego (its friends, grouped by it).
    """

    attributes: sparse.csr_matrix
    circles: sparse.csr_matrix


def ego_profiles(root: str | os.PathLike[str] | None, nodes: int) -> EgoProfiles:
    """The checksum-verified ego networks' profiles and circles over nodes 0..``nodes - 1``."""
    files = locate(FACEBOOK_EGOS, root)
    names: dict[str, int] = {}
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    members: list[int] = []
    circle_of: list[int] = []
    circles = 0
    for ego in sorted({int(name.split(".")[0]) for name in files}):
        local = np.array([names.setdefault(line.split(" ", 1)[1].strip(), len(names))
                          for line in files[f"{ego}.featnames"].read_text().splitlines() if line.strip()], np.int64)
        table = _read_ints(files[f"{ego}.feat"], len(local) + 1)
        values = np.vstack([table[:, 1:], _read_ints(files[f"{ego}.egofeat"], len(local))])
        node, feature = np.nonzero(values)
        rows.append(np.concatenate([table[:, 0], [ego]])[node])
        cols.append(local[feature])
        for line in files[f"{ego}.circles"].read_text().splitlines():
            inside = [int(m) for m in line.split()[1:]]
            members += inside
            circle_of += [circles] * len(inside)
            circles += 1
    node_ids = np.concatenate(rows)
    if node_ids.max(initial=0) >= nodes or max(members, default=0) >= nodes:
        raise MlsdError(f"{FACEBOOK_EGOS}: a profile names a node outside the graph's {nodes} nodes")

    def binary(r: np.ndarray, c: np.ndarray, width: int) -> sparse.csr_matrix:
        matrix = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(nodes, width))
        matrix.data[:] = 1.0  # a node in two ego networks has an attribute once
        return matrix

    return EgoProfiles(binary(node_ids, np.concatenate(cols), len(names)),
                       binary(np.array(members, np.int64), np.array(circle_of, np.int64), circles))
