"""Similar listings on the Diginetica sample: session clicks as events, session state, skip-gram embeddings + ANN."""

from mlsd.systems.listings.system import SYSTEM, ListingsSystem

__all__ = ["SYSTEM", "ListingsSystem"]
