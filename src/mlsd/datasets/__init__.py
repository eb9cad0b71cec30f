"""Public datasets: where each file lives, its checksum, and loaders that verify before reading.

Files are never shipped with mlsd (their licences forbid it); they are read from a data directory
(``--data DIR`` or ``MLSD_DATA_DIR``) laid out as the official distributions are.
"""

from mlsd.datasets.registry import DATASETS, Dataset, DatasetFile, locate
from mlsd.datasets.talkingdata import TALKINGDATA_SCHEMA, synthetic_clicks

__all__ = ["DATASETS", "TALKINGDATA_SCHEMA", "Dataset", "DatasetFile", "locate", "synthetic_clicks"]
