"""Embeddings as a vector feature view: computed once per encoder version, read back point in time.

:func:`embedding_view` writes (or reuses) a Parquet table of one entity key, a ``fixed_size_list<float32>``
column and the event time, with the encoder's version in the file's metadata, and returns the feature
view over it (its ``encoder`` set, so vectors of another version are never read as these).
:func:`vectors_at` reads them back through the feature store's point-in-time join as one matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.core.timeutil import US_PER_S
from mlsd.embeddings.base import Encoder
from mlsd.features import Entity, FeatureStore, FeatureView, TableSource, output_column, vector_feature

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _reusable(path: Path, version: str, key: str, ids: np.ndarray) -> bool:
    if not path.exists():
        return False
    meta = pq.read_schema(path).metadata or {}
    return meta.get(b"encoder") == version.encode() and pq.read_metadata(path).num_rows == len(ids) and \
        bool(np.array_equal(pq.read_table(path, columns=[key])[key].to_numpy(), ids))


def embedding_view(path: Path, name: str, entity: Entity, feature: str, encoder: Encoder, ids: np.ndarray,
                   times_s: np.ndarray, inputs: Sequence[Any], *, progress: bool = False, batch_size: int = 128
                   ) -> tuple[FeatureView, bool]:
    """The view over ``path``'s embeddings of ``inputs`` (one per id); True when the table was reused.

    The table is rebuilt when the encoder's version or the ids differ from what it holds.
    """
    (key,) = entity.join_keys
    view = FeatureView(name, (entity,), TableSource(str(path)), (vector_feature(feature, encoder.dim),),
                       encoder=encoder.version)
    if _reusable(path, encoder.version, key, ids):
        return view, True
    vectors = encoder.encode(inputs, batch_size=batch_size, progress=progress)
    table = pa.table({key: ids, feature: pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), encoder.dim),
                      "event_timestamp": pa.array(np.asarray(times_s, np.int64) * US_PER_S, pa.int64()).cast(
                          TIMESTAMP)}).replace_schema_metadata({"encoder": encoder.version})
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    pq.write_table(table, scratch)
    scratch.replace(path)  # readers see the old table or the new one
    return view, False


def vectors_at(store: FeatureStore, view: FeatureView, ids: np.ndarray, at_s: np.ndarray) -> np.ndarray:
    """``(len(ids), dim)`` float32: each id's vector as of ``at_s`` (point in time; NaN rows where none)."""
    (key,) = view.join_keys
    labels = pa.table({"__row": np.arange(len(ids)), key: ids,
                       "event_timestamp": pa.array(np.asarray(at_s, np.int64) * US_PER_S, pa.int64()).cast(TIMESTAMP)})
    frame = store.training_frame(labels, [view.name]).read_all().sort_by("__row")
    feature = view.features[0]
    column = frame[output_column(view.name, feature.name)].combine_chunks()
    matrix = np.full((len(ids), feature.width), np.nan, np.float32)
    valid = ~column.is_null().to_numpy(zero_copy_only=False)
    matrix[valid] = np.asarray(column.flatten().to_numpy(), np.float32).reshape(-1, feature.width)
    return matrix
