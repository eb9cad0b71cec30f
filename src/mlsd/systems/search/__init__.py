"""Search ranking on LETOR 4.0 MQ2008: judgments as events, LambdaMART vs a pointwise peer, ranked serving."""

from mlsd.systems.search.system import SYSTEM, SearchSystem

__all__ = ["SYSTEM", "SearchSystem"]
