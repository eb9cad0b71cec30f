"""Learned representations as features: encoders for text and images, one code path for batch and request.

An :class:`Encoder` turns a batch of inputs into a fixed-width float32 matrix and names its version;
the version goes into the lineage of every feature view and model built from its output, so a changed
encoder invalidates them (:mod:`mlsd.features` refuses to read vectors written by another version).
``check_encoder`` is the contract kit every encoder passes.
"""

from mlsd.embeddings.base import Encoder, encode_batches
from mlsd.embeddings.contract import check_encoder

__all__ = ["Encoder", "check_encoder", "encode_batches"]
