"""Ad click prediction (the book's chapter 8): click events, streaming CTR-style features."""

from mlsd.systems.ads.system import SYSTEM, AdsSystem

__all__ = ["SYSTEM", "AdsSystem"]
