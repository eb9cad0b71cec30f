"""mlsd: the production ML systems of *Machine Learning System Design Interview*, running and measured.

Lifecycle stages are subpackages (``events``, ``features``, ...); ``core`` holds the few pieces they share.
"""

__version__ = "0.1.0"
