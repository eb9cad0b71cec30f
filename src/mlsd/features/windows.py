"""Exact sliding-window aggregation state, updated a batch at a time with numpy.

State per :class:`AggregationView`: a dense index of entity keys, and per window a count, sums and
distinct-value multiplicities. Every event is added once and subtracted once, when it falls out of its
window; expiry queues are heaps of time-sorted chunks, so out-of-order events are handled exactly and
in-order streams cost O(batch) per batch. Semantics match the offline store exactly: at watermark ``T``
(all events up to ``T`` added) a window ``W`` covers event times in ``(T - W, T]``, which is the offline
value at lookup time ``T + 1µs`` (``[t - W, t)``, strictly before ``t``).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlsd.features.definitions import AggregationView

NO_TIME = np.iinfo(np.int64).min


def _grow(array: np.ndarray, size: int, fill: float | int = 0) -> np.ndarray:
    if size <= len(array):
        return array
    grown = np.full(max(size, 2 * len(array), 1024), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@dataclass
class _Distinct:
    """Per-key count of distinct values, from multiplicities of (key, value) pairs."""

    pairs: dict[tuple[int, object], int] = field(default_factory=dict)
    multiplicity: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def apply(self, keys: np.ndarray, values: list[object], sign: int, n_keys: int) -> None:
        before_len = len(self.pairs)
        pairs = self.pairs
        ids = np.fromiter((pairs.setdefault(p, len(pairs)) for p in zip(keys.tolist(), values, strict=True)),
                          dtype=np.int64, count=len(keys))
        self.multiplicity = _grow(self.multiplicity, len(pairs))
        self.pair_key = _grow(self.pair_key, len(pairs))
        self.distinct = _grow(self.distinct, n_keys)
        new = ids >= before_len
        self.pair_key[ids[new]] = keys[new]
        unique, counts = np.unique(ids, return_counts=True)
        before = self.multiplicity[unique]
        after = before + sign * counts
        self.multiplicity[unique] = after
        change = ((before == 0) & (after > 0)).astype(np.int64) - ((before > 0) & (after == 0))
        np.add.at(self.distinct, self.pair_key[unique], change)

    def compact(self, kept: np.ndarray, remap: np.ndarray) -> None:
        """Keep the keys ``kept`` (new index ``remap[old]``) and the pairs still counted."""
        live = np.flatnonzero(self.multiplicity[:len(self.pairs)] > 0)
        items = list(self.pairs.items())
        self.pairs = {(int(remap[items[i][0][0]]), items[i][0][1]): new for new, i in enumerate(live.tolist())}
        self.multiplicity = self.multiplicity[live]
        self.pair_key = remap[self.pair_key[live]]
        self.distinct = self.distinct[kept]


@dataclass
class _Window:
    """Running aggregates over one window length (``None`` = all history, never expires)."""

    length_us: int | None
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    distinct: dict[str, _Distinct] = field(default_factory=dict)
    queue: list[tuple[int, int, int]] = field(default_factory=list)

    def apply(self, keys: np.ndarray, columns: dict[str, np.ndarray], lists: dict[str, list[object]],
              sign: int, n_keys: int) -> None:
        self.count = _grow(self.count, n_keys)
        # Small batches (a live stream, one event at a time) touch a few keys: scattered adds cost
        # O(events); a dense bincount costs O(keys) and wins only for large batches.
        sparse = len(keys) * 16 < len(self.count)
        if sparse:
            np.add.at(self.count, keys, sign)
        else:
            self.count += sign * np.bincount(keys, minlength=len(self.count))
        for name in self.sums:
            self.sums[name] = _grow(self.sums[name], n_keys, 0.0)
            if sparse:
                np.add.at(self.sums[name], keys, sign * np.asarray(columns[name], dtype=np.float64))
            else:
                self.sums[name] += sign * np.bincount(keys, weights=columns[name], minlength=len(self.sums[name]))
        for name, distinct in self.distinct.items():
            distinct.apply(keys, lists[name], sign, n_keys)


@dataclass
class _Chunk:
    ts: np.ndarray
    keys: np.ndarray
    columns: dict[str, np.ndarray]


class WindowedAggregator:
    """Streaming state of one aggregation view; :meth:`add` then :meth:`vectors` for the touched keys.

    With a view ttl, :meth:`compact` forgets the keys whose latest event left the ttl (every aggregate
    of theirs is empty: their last vectors have been returned as touched by :meth:`advance`), so the
    state holds the keys active within one ttl; key indices change then (:attr:`generation` counts it).
    """

    def __init__(self, view: AggregationView, *, compact_min: int = 4096) -> None:
        self.view = view
        self.ttl_us = view.ttl_us
        self._window_us = [view.window_us(agg) for agg in view.aggregations]  # read per vectors() call
        self.compact_min = compact_min  # compact once the keys have doubled since the last time, and are this many
        self.generation = 0
        self._live_after_compact = 0
        self.key_index: dict[object, int] = {}
        self.keys: list[object] = []
        self.watermark = NO_TIME
        self.windows: dict[int | None, _Window] = {}
        self.last_ts = np.zeros(0, np.int64)
        self.last_values: dict[str, np.ndarray] = {}
        # nth_last: per key the latest `depth` events' times and values, latest first.
        self.depth = max((a.n for a in view.aggregations if a.function == "nth_last"), default=0)
        self.recent_ts = np.full((0, self.depth), NO_TIME, np.int64)
        self.recent_values: dict[str, np.ndarray] = {}
        self._chunks: dict[int, _Chunk] = {}
        self._refs: dict[int, int] = {}
        self._sequence = 0
        for agg in view.aggregations:
            if agg.function == "last":
                self.last_values.setdefault(str(agg.column), np.zeros(0))
            if agg.function == "nth_last":
                self.recent_values.setdefault(str(agg.column), np.zeros((0, self.depth)))
                continue
            window_us = view.window_us(agg)
            if agg.function == "time_since_last" or (agg.function == "last" and window_us is None):
                # Read from the latest event alone (readers apply a time-since window at read time).
                continue
            # A windowed `last` keeps a window only so that expiry rewrites the key when it goes stale.
            window = self.windows.setdefault(window_us, _Window(window_us))
            if agg.function in ("sum", "mean"):
                window.sums.setdefault(str(agg.column), np.zeros(0))
            elif agg.function == "distinct_count":
                window.distinct.setdefault(str(agg.column), _Distinct())
        if self.ttl_us is not None:  # expiry out of the ttl rewrites a key (nth_last, last go empty then)
            self.windows.setdefault(self.ttl_us, _Window(self.ttl_us))
        self._numeric = sorted({c for w in self.windows.values() for c in w.sums} | set(self.last_values)
                               | set(self.recent_values))
        self._categorical = sorted({c for w in self.windows.values() for c in w.distinct})

    @property
    def n_keys(self) -> int:
        return len(self.key_index)

    def index_keys(self, key_columns: Sequence[Sequence[object]]) -> np.ndarray:
        """Dense indices of entity keys (new keys get the next index)."""
        index = self.key_index
        before = len(index)
        source = key_columns[0] if len(key_columns) == 1 else list(zip(*key_columns, strict=True))
        indices = np.fromiter((index.setdefault(k, len(index)) for k in source), dtype=np.int64,
                              count=len(key_columns[0]))
        if len(index) > before:
            _, first = np.unique(indices[indices >= before], return_index=True)
            positions = np.flatnonzero(indices >= before)[first]
            self.keys.extend(source[p] for p in positions.tolist())
        return indices

    def add(self, ts: np.ndarray, key_columns: Sequence[Sequence[object]],
            columns: dict[str, np.ndarray]) -> np.ndarray:
        """Add events (times in epoch µs, join-key columns, value columns); returns the touched key indices."""
        if len(ts) == 0:
            return np.zeros(0, np.int64)
        keys = self.index_keys(key_columns)
        order = np.argsort(ts, kind="stable")
        ts, keys = ts[order], keys[order]
        numeric = {c: np.asarray(columns[c], dtype=np.float64)[order] for c in self._numeric}
        lists = {c: np.asarray(columns[c])[order].tolist() for c in self._categorical}
        n = self.n_keys
        chunk_columns = numeric | {c: np.asarray(columns[c])[order] for c in self._categorical}
        chunk_id = self._sequence
        self._sequence += 1
        for window in self.windows.values():
            window.apply(keys, numeric, lists, +1, n)
            if window.length_us is not None:
                heapq.heappush(window.queue, (int(ts[0]), chunk_id, 0))
                self._refs[chunk_id] = self._refs.get(chunk_id, 0) + 1
        if chunk_id in self._refs:  # kept until every window it is queued in has expired it
            self._chunks[chunk_id] = _Chunk(ts, keys, chunk_columns)
        self._update_last(ts, keys, numeric, n)
        if self.depth:
            self._update_recent(ts, keys, numeric, n)
        touched = np.unique(keys)
        return np.union1d(touched, self.advance(int(ts[-1])))

    def _update_last(self, ts: np.ndarray, keys: np.ndarray, numeric: dict[str, np.ndarray], n: int) -> None:
        self.last_ts = _grow(self.last_ts, n, NO_TIME)
        # The last occurrence of each key in the time-sorted batch is its latest event (later arrival on ties).
        reversed_keys = keys[::-1]
        unique, first_in_reversed = np.unique(reversed_keys, return_index=True)
        positions = len(keys) - 1 - first_in_reversed
        newer = ts[positions] >= self.last_ts[unique]
        unique, positions = unique[newer], positions[newer]
        self.last_ts[unique] = ts[positions]
        for name in self.last_values:
            self.last_values[name] = _grow(self.last_values[name], n, np.nan)
            self.last_values[name][unique] = numeric[name][positions]

    def _update_recent(self, ts: np.ndarray, keys: np.ndarray, numeric: dict[str, np.ndarray], n: int) -> None:
        """Insert each event into its key's latest-first list (a later arrival wins a tie, as for ``last``)."""
        if len(self.recent_ts) < n:
            grown = max(n, 2 * len(self.recent_ts), 1024)
            self.recent_ts = np.vstack([self.recent_ts, np.full((grown - len(self.recent_ts), self.depth), NO_TIME)])
            for name, values in self.recent_values.items():
                self.recent_values[name] = np.vstack([values, np.full((grown - len(values), self.depth), np.nan)])
        recent_ts, columns = self.recent_ts, list(self.recent_values.items())
        for position, (key, stamp) in enumerate(zip(keys.tolist(), ts.tolist(), strict=True)):
            row = recent_ts[key]
            slot = int(np.count_nonzero(row > stamp))  # the row is latest first: skip the newer entries
            if slot >= self.depth:
                continue
            row[slot + 1:] = row[slot:-1].copy()
            row[slot] = stamp
            for name, values in columns:
                values[key, slot + 1:] = values[key, slot:-1].copy()
                values[key, slot] = numeric[name][position]

    def advance(self, watermark_us: int) -> np.ndarray:
        """Move event time forward; subtract events that left their windows. Returns keys that changed."""
        self.watermark = max(self.watermark, watermark_us)
        touched: list[np.ndarray] = []
        for window in self.windows.values():
            if window.length_us is None:
                continue
            limit = self.watermark - window.length_us + 1
            queue = window.queue
            while queue and queue[0][0] < limit:
                _, chunk_id, start = heapq.heappop(queue)
                chunk = self._chunks[chunk_id]
                stop = int(np.searchsorted(chunk.ts, limit, side="left"))
                keys = chunk.keys[start:stop]
                columns = {c: v[start:stop] for c, v in chunk.columns.items()}
                lists = {c: columns[c].tolist() for c in window.distinct}
                window.apply(keys, columns, lists, -1, self.n_keys)
                touched.append(keys)
                if stop < len(chunk.ts):
                    heapq.heappush(queue, (int(chunk.ts[stop]), chunk_id, stop))
                else:
                    self._release(chunk_id)
        return np.unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)

    def _release(self, chunk_id: int) -> None:
        """One window is done with a chunk; the last one frees it (O(1): a live stream adds one per event)."""
        self._refs[chunk_id] -= 1
        if self._refs[chunk_id] == 0:
            del self._refs[chunk_id]
            del self._chunks[chunk_id]

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """Feature matrix ``(len(keys), n_features)`` as of the watermark, in the view's aggregation order.

        ``time_since_last`` columns hold the latest event time (µs); readers subtract it from their time.
        """
        out = np.empty((len(keys), len(self.view.aggregations)), dtype=np.float64)
        for j, (agg, window_us) in enumerate(zip(self.view.aggregations, self._window_us, strict=True)):
            window = self.windows.get(window_us)
            if agg.function == "nth_last":
                out[:, j] = self.recent_values[str(agg.column)][keys, agg.n - 1]
                if self.ttl_us is not None:
                    out[self.recent_ts[keys, agg.n - 1] <= self.watermark - self.ttl_us, j] = np.nan
            elif window is None or agg.function in ("last", "time_since_last"):
                out[:, j] = self._latest(keys, agg.function, agg.column, window_us)
            elif agg.function == "count":
                out[:, j] = window.count[keys]
            elif agg.function == "sum":
                out[:, j] = window.sums[str(agg.column)][keys]
            elif agg.function == "mean":
                count = window.count[keys]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[:, j] = np.where(count > 0, window.sums[str(agg.column)][keys] / count, np.nan)
            elif agg.function == "distinct_count":
                out[:, j] = window.distinct[str(agg.column)].distinct[keys]
        return out

    def _latest(self, keys: np.ndarray, function: str, column: str | None, window_us: int | None) -> np.ndarray:
        """``last`` value, or the latest event time for ``time_since_last``; NaN if none inside the window."""
        last = self.last_ts[keys]
        alive = last != NO_TIME
        if window_us is not None:
            alive &= last > self.watermark - window_us
        source = self.last_values[str(column)][keys] if function == "last" else last.astype(np.float64)
        return np.where(alive, source, np.nan)

    def compact(self) -> bool:
        """Forget the keys with no event within the ttl, when they are due (True: indices changed).

        Due once the keys have doubled since the last compaction and number at least ``compact_min``,
        so the cost is amortized O(1) per key. Call it after the touched keys' vectors were read.
        """
        n = self.n_keys
        if self.ttl_us is None or n < max(self.compact_min, 2 * self._live_after_compact):
            return False
        kept = np.flatnonzero(self.last_ts[:n] > self.watermark - self.ttl_us)
        self._live_after_compact = len(kept)
        if len(kept) == n:
            return False
        remap = np.full(n, -1, np.int64)
        remap[kept] = np.arange(len(kept))
        self.keys = [self.keys[i] for i in kept.tolist()]
        self.key_index = {key: i for i, key in enumerate(self.keys)}
        self.last_ts = self.last_ts[kept]
        self.last_values = {c: v[kept] for c, v in self.last_values.items()}
        if self.depth:
            self.recent_ts = self.recent_ts[kept]
            self.recent_values = {c: v[kept] for c, v in self.recent_values.items()}
        for window in self.windows.values():
            window.count = window.count[kept]
            window.sums = {c: v[kept] for c, v in window.sums.items()}
            for distinct in window.distinct.values():
                distinct.compact(kept, remap)
        # A forgotten key's events are all older than the ttl: every window has already subtracted them,
        # so they sit in the consumed part of their chunks, which is never read again.
        for chunk in self._chunks.values():
            chunk.keys = np.where(chunk.keys >= 0, remap[chunk.keys], -1)
        self.generation += 1
        return True
