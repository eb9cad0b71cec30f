"""The harmful-content system's features: each post's MiniLM embedding as a vector feature view.

Computed once per encoder version (:mod:`mlsd.embeddings.table`); training reads them point in time
through the feature store, and materialization puts them in the online store.
"""

from __future__ import annotations

import numpy as np

from mlsd.embeddings import Encoder
from mlsd.embeddings.table import embedding_view, vectors_at
from mlsd.features import Entity, FeatureView
from mlsd.system import Workspace
from mlsd.systems.harmful.data import Posts

POST = Entity("post", ("post_id",))
EMBEDDING_VIEW = "post_embedding"
EMBEDDING = "minilm"
TABLE = "post_embeddings.parquet"


def write_embeddings(ws: Workspace, posts: Posts, encoder: Encoder, progress: bool) -> tuple[FeatureView, bool]:
    """The posts' embedding view (the table reused when the encoder and the posts are the same)."""
    return embedding_view(ws.home / "features" / TABLE, EMBEDDING_VIEW, POST, EMBEDDING, encoder, posts.ids,
                          posts.times_s, posts.texts, progress=progress)


def frame_embeddings(ws: Workspace, view: FeatureView, posts: Posts) -> np.ndarray:
    """Every post's vector read back through the feature store, a second after it was posted."""
    store = ws.feature_store([view])
    try:
        return vectors_at(store, view, posts.ids, posts.times_s + 1)
    finally:
        store.online.close()
