"""MovieLens loaders: ratings with timestamps, user attributes and item genres, checksums verified first.

Two layouts are read: ML-100K (``u.data`` / ``u.user`` / ``u.item``) and ML-1M (``::``-separated
``ratings.dat`` / ``movies.dat`` / optional ``users.dat``). Both become one :class:`MovieLens` shape with
dense 0-based ``user`` / ``item`` indices beside the original ids, so models index arrays directly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.datasets.registry import locate

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True)
class MovieLens:
    """Ratings, users and items of one MovieLens release.

    ``ratings``: user_id, item_id, rating, timestamp (Unix s), file_row (the row's place in the release's
    file), user, item (dense indices).
    ``users``: user_id, user, age, gender, occupation (integer codes; -1 where the release has none).
    ``items``: item_id, item, title, year (NaN if unknown); ``genres`` is (n_items, n_genres) 0/1 by ``item``.
    """

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: np.ndarray
    genre_names: tuple[str, ...]

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)


def _year(titles: pd.Series) -> np.ndarray:
    return titles.str.extract(_YEAR, expand=False).astype(float).to_numpy()


def _index(ratings: pd.DataFrame, users: pd.DataFrame,
           items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    users = users.sort_values("user_id").reset_index(drop=True)
    items = items.sort_values("item_id").reset_index(drop=True)
    users["user"] = np.arange(len(users))
    items["item"] = np.arange(len(items))
    # The row's place in the release's file: published splits draw their random numbers in that order.
    ratings = ratings.assign(file_row=np.arange(len(ratings)))
    ratings = ratings.merge(users[["user_id", "user"]], on="user_id").merge(items[["item_id", "item"]], on="item_id")
    ratings = ratings.sort_values(["timestamp", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    return ratings, users, items


def load_ml100k(root: str | os.PathLike[str] | None = None) -> MovieLens:
    """MovieLens 100K (943 users, 1,682 movies, 100,000 ratings) from ``DIR/movielens/ml-100k``."""
    files = locate("movielens-100k", root)
    ratings = pd.read_csv(files["u.data"], sep="\t", names=["user_id", "item_id", "rating", "timestamp"],
                          dtype="int64")
    users = pd.read_csv(files["u.user"], sep="|", names=["user_id", "age", "gender", "occupation", "zip"],
                        dtype={"zip": str})
    users["gender"] = (users["gender"] == "F").astype(np.int64)
    users["occupation"] = users["occupation"].astype("category").cat.codes.astype(np.int64)
    raw = pd.read_csv(files["u.item"], sep="|", header=None, encoding="latin-1")
    items = pd.DataFrame({"item_id": raw[0].astype(np.int64), "title": raw[1].astype(str)})
    released = pd.to_datetime(raw[2], format="%d-%b-%Y", errors="coerce")
    items["year"] = released.dt.year.astype(float).to_numpy()
    genres = raw.iloc[:, 5:5 + len(GENRES_100K)].to_numpy(dtype=np.float32)
    order = np.argsort(items["item_id"].to_numpy())
    ratings, users, items = _index(ratings, users[["user_id", "age", "gender", "occupation"]], items)
    return MovieLens("ml-100k", ratings, users, items, genres[order], GENRES_100K)


def load_ml1m_first_half(root: str | os.PathLike[str] | None = None) -> MovieLens:
    """ML-1M ratings of users 1-2999 with movie genres (no user attributes: they are -1)."""
    files = locate("movielens-1m-first-half", root)
    ratings = pd.read_csv(files["ratings.dat"], sep="::", engine="python",
                          names=["user_id", "item_id", "rating", "timestamp"], dtype="int64")
    movies = pd.read_csv(files["movies.dat"], sep="::", engine="python", names=["item_id", "title", "genres"],
                         encoding="latin-1")
    names = tuple(sorted({g for row in movies["genres"] for g in str(row).split("|")}))
    position = {g: j for j, g in enumerate(names)}
    genres = np.zeros((len(movies), len(names)), np.float32)
    for i, row in enumerate(movies["genres"]):
        for g in str(row).split("|"):
            genres[i, position[g]] = 1.0
    items = pd.DataFrame({"item_id": movies["item_id"].astype(np.int64), "title": movies["title"].astype(str)})
    items["year"] = _year(items["title"])
    order = np.argsort(items["item_id"].to_numpy())
    users = pd.DataFrame({"user_id": np.sort(ratings["user_id"].unique())})
    for column in ("age", "gender", "occupation"):
        users[column] = -1
    ratings, users, items = _index(ratings, users, items)
    return MovieLens("ml-1m-first-half", ratings, users, items, genres[order], names)


LOADERS = {"ml-100k": load_ml100k, "ml-1m-first-half": load_ml1m_first_half}


def load_movielens(name: str, root: str | os.PathLike[str] | None = None) -> MovieLens:
    """A MovieLens release by name (``ml-100k`` or ``ml-1m-first-half``)."""
    if name not in LOADERS:
        raise ValueError(f"unknown MovieLens release {name!r}; known: {sorted(LOADERS)}")
    return LOADERS[name](root)

