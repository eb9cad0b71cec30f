"""People you may know on SNAP ego-Facebook and CollegeMsg: graph features, a ranker, batch precompute, fresh lists."""

from mlsd.systems.pymk.system import SYSTEM, PymkSystem

__all__ = ["SYSTEM", "PymkSystem"]
