"""The harmful-content system's features: each post's MiniLM embedding as a vector feature view.

The embeddings are computed once per encoder version and written as a Parquet table (``post_id``, a
``fixed_size_list<float32>[384]``, the post's event time); the feature view names the encoder's
version, so another encoder's table is never read as this one (:mod:`mlsd.features`). Training reads
them point in time through the feature store; materialization puts them in the online store, where
the service can look up a known post's vector (the skew check compares it with the request path's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.core.timeutil import US_PER_S
from mlsd.embeddings import Encoder
from mlsd.features import Entity, FeatureView, TableSource, vector_feature
from mlsd.system import Workspace
from mlsd.systems.harmful.data import Posts

POST = Entity("post", ("post_id",))
EMBEDDING_VIEW = "post_embedding"
EMBEDDING = "minilm"
TABLE = "post_embeddings.parquet"


def embedding_view(path: Path, encoder_version: str, dim: int) -> FeatureView:
    return FeatureView(EMBEDDING_VIEW, (POST,), TableSource(str(path)), (vector_feature(EMBEDDING, dim),),
                       encoder=encoder_version)


def write_embeddings(ws: Workspace, posts: Posts, encoder: Encoder, progress: bool) -> tuple[FeatureView, bool]:
    """The posts' embeddings table (reused when the encoder and the posts are the same); True when reused."""
    path = ws.home / "features" / TABLE
    if path.exists():
        schema = pq.read_schema(path)
        meta = schema.metadata or {}
        if meta.get(b"encoder") == encoder.version.encode() and pq.read_metadata(path).num_rows == len(posts) \
                and np.array_equal(pq.read_table(path, columns=["post_id"])["post_id"].to_numpy(), posts.ids):
            return embedding_view(path, encoder.version, encoder.dim), True
    vectors = encoder.encode(posts.texts, batch_size=128, progress=progress)
    table = pa.table({"post_id": posts.ids,
                      EMBEDDING: pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), encoder.dim),
                      "event_timestamp": pa.array(posts.times_s * US_PER_S, pa.int64()).cast(
                          pa.timestamp("us", tz="UTC"))})
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.replace_schema_metadata({"encoder": encoder.version})
    scratch = path.with_suffix(".tmp")
    pq.write_table(table, scratch)
    scratch.replace(path)
    return embedding_view(path, encoder.version, encoder.dim), False


def frame_embeddings(ws: Workspace, view: FeatureView, posts: Posts) -> np.ndarray:
    """Every post's vector read back through the feature store, point in time (a second after posting)."""
    labels = pa.table({"row": np.arange(len(posts)), "post_id": posts.ids,
                       "event_timestamp": pa.array((posts.times_s + 1) * US_PER_S, pa.int64()).cast(
                           pa.timestamp("us", tz="UTC"))})
    store = ws.feature_store([view])
    try:
        frame = store.training_frame(labels, [EMBEDDING_VIEW]).read_all().sort_by("row")
    finally:
        store.online.close()
    column = frame[f"{EMBEDDING_VIEW}__{EMBEDDING}"].combine_chunks()
    dim = view.features[0].width
    return np.asarray(column.flatten().to_numpy(), np.float32).reshape(-1, dim)
