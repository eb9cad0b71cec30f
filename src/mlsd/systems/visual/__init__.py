"""Visual search (the book's chapter 2) on the fashion-products images, on the System API."""

from mlsd.systems.visual.system import SYSTEM

__all__ = ["SYSTEM"]
