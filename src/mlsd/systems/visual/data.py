"""The fashion-products subset: 9,583 product images (224x224 JPEG) with their labels, and the query split.

``styles.csv`` labels 44,446 products (gender, category, article type, colour, season, usage);
``styles_text.csv`` has their names in the same row order; ``images/{id}.jpg`` exists for 9,583 of
them. The images are verified as one digest of all files concatenated in sorted path order (the data
manifest's checksum). Queries are products held out at random (seed 0): the gallery is every other
product, and a learned projection sees only gallery products' labels; its validation queries are
carved from the gallery too.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.core.errors import DataNotFoundError, MlsdError
from mlsd.core.paths import data_dir
from mlsd.datasets import locate

DATASET = "fashion-products"
IMAGES_DIGEST = "e8482064053256a0bf6634aeb4cf4ac8e76d31ca53e8fb8e6dbb8f96d45a820f"
QUERIES = 1000
VALID_QUERIES = 800
SEED = 0
_VERIFIED: set[str] = set()


@dataclass(frozen=True)
class Products:
    """Products that have an image, in ``styles.csv`` order."""

    ids: np.ndarray
    article_type: np.ndarray  # str
    colour: np.ndarray  # str
    gender: np.ndarray
    usage: np.ndarray
    names: list[str]
    images: Path

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, row: int) -> Path:
        return self.images / f"{int(self.ids[row])}.jpg"

    def image_bytes(self, row: int) -> bytes:
        return self.image_path(row).read_bytes()

    def subset(self, rows: np.ndarray) -> Products:
        return Products(self.ids[rows], self.article_type[rows], self.colour[rows], self.gender[rows],
                        self.usage[rows], [self.names[i] for i in rows], self.images)


def verify_images(folder: Path) -> None:
    """The digest of every image, concatenated in sorted path order, must match the manifest's."""
    if str(folder) in _VERIFIED:
        return
    if not folder.is_dir():
        raise DataNotFoundError(f"dataset {DATASET!r}: missing: {folder}")
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    if digest.hexdigest() != IMAGES_DIGEST:
        raise DataNotFoundError(f"dataset {DATASET!r}: checksum mismatch: {folder} (images added, removed or altered)")
    _VERIFIED.add(str(folder))


def load_products(data: str | os.PathLike[str] | None) -> Products:
    files = locate(DATASET, data)
    base = data_dir(data)
    assert base is not None
    images = base / "fashion-products" / "images"
    verify_images(images)
    with open(files["styles.csv"], encoding="utf-8", newline="") as f:
        styles = list(csv.DictReader(f))
    with open(files["styles_text.csv"], encoding="utf-8", newline="") as f:
        names = [row["productDisplayName"] for row in csv.DictReader(f)]
    if len(names) != len(styles):
        raise MlsdError(f"{files['styles_text.csv']}: {len(names)} names for {len(styles)} styles rows")
    present = {p.stem for p in images.glob("*.jpg")}
    rows = [i for i, row in enumerate(styles) if row["id"] in present]
    pick = [styles[i] for i in rows]
    return Products(np.asarray([int(r["id"]) for r in pick], np.int64),
                    np.asarray([r["articleType"] for r in pick]), np.asarray([r["baseColour"] for r in pick]),
                    np.asarray([r["gender"] for r in pick]), np.asarray([r["usage"] for r in pick]),
                    [names[i] for i in rows], images)


@dataclass(frozen=True)
class QuerySplit:
    """Row numbers: held-out queries, the gallery, and the gallery's own validation queries."""

    queries: np.ndarray
    gallery: np.ndarray
    valid: np.ndarray  # gallery rows used as validation queries (searched against the rest of the gallery)


def query_split(n: int, queries: int = QUERIES, valid: int = VALID_QUERIES, seed: int = SEED) -> QuerySplit:
    order = np.random.default_rng(seed).permutation(n)
    held, gallery = np.sort(order[:queries]), np.sort(order[queries:])
    return QuerySplit(held, gallery, np.sort(np.random.default_rng(seed + 1).choice(gallery, valid, replace=False)))
