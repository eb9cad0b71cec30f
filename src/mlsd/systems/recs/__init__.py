"""Video recommendation on MovieLens: two-tower + co-visitation + popularity candidates, LambdaMART, MMR."""

from mlsd.systems.recs.system import SYSTEM, RecsSystem

__all__ = ["SYSTEM", "RecsSystem"]
