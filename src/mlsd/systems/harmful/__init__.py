"""Harmful content detection (the book's chapter 5) on Davidson et al. 2017, on the System API."""

from mlsd.systems.harmful.system import SYSTEM

__all__ = ["SYSTEM"]
