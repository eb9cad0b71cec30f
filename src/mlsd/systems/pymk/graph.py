"""Graph features with sparse matrix algebra: neighbourhood scores for many pairs at once, and node embeddings.

For an adjacency matrix ``A`` (symmetric, 0/1, CSR): common neighbours are ``A @ A``, Adamic–Adar
``A @ diag(1 / log deg) @ A`` and resource allocation ``A @ diag(1 / deg) @ A``; these share the
sparsity of ``A @ A``, whose off-diagonal non-edges are exactly the friends-of-friends candidates.
Scores of arbitrary pairs are looked up in those products by binary search over ``row * n + col``.
Node embeddings are node2vec's: second-order random walks from every node (return ``p``, in-out
``q``; uniform, DeepWalk's, at p = q = 1) fed to gensim's skip-gram. Where the ego networks describe
the nodes (:class:`EgoProfiles`), two more pair features count what a pair shares: profile attributes
(``P @ P.T``) and circles (``C @ C.T``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from mlsd.systems.pymk.data import EgoProfiles
from mlsd.training.skipgram import skipgram_vectors

PAIR_FEATURES = ("common_neighbours", "adamic_adar", "resource_allocation", "jaccard", "preferential_attachment",
                 "degree_min", "degree_max", "embedding_cosine")
EGO_FEATURES = ("shared_attributes", "shared_circles")


def adjacency(edges: np.ndarray, nodes: int) -> sparse.csr_matrix:
    """The symmetric 0/1 adjacency of undirected ``edges`` ((m, 2) array) over ``nodes`` nodes."""
    u, v = edges[:, 0], edges[:, 1]
    matrix = sparse.csr_matrix((np.ones(2 * len(u)), (np.concatenate([u, v]), np.concatenate([v, u]))),
                               shape=(nodes, nodes))
    matrix.data[:] = 1.0  # repeated edges count once
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.eliminate_zeros()
    return matrix


def lookup(matrix: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows, cols]`` for many pairs (0 where absent), by binary search over linear keys."""
    coo = matrix.tocoo()
    keys = coo.row.astype(np.int64) * matrix.shape[1] + coo.col
    order = np.argsort(keys)
    keys, data = keys[order], coo.data[order]
    wanted = rows.astype(np.int64) * matrix.shape[1] + cols
    at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = (keys[at] == wanted) if len(keys) else np.zeros(len(wanted), bool)
    return np.where(found, data[at] if len(keys) else 0.0, 0.0)


@dataclass
class GraphFeatures:
    """The neighbourhood products of one graph and its node embeddings; features of any pairs."""

    adjacency: sparse.csr_matrix
    common: sparse.csr_matrix
    adamic_adar: sparse.csr_matrix
    resource: sparse.csr_matrix
    degree: np.ndarray
    embeddings: np.ndarray
    profiles: EgoProfiles | None = None

    @classmethod
    def build(cls, matrix: sparse.csr_matrix, embeddings: np.ndarray,
              profiles: EgoProfiles | None = None) -> GraphFeatures:
        degree = np.asarray(matrix.sum(axis=1)).ravel()
        inverse_log, inverse = inverse_degrees(degree)
        return cls(matrix, (matrix @ matrix).tocsr(), (matrix @ sparse.diags(inverse_log) @ matrix).tocsr(),
                   (matrix @ sparse.diags(inverse) @ matrix).tocsr(), degree, embeddings, profiles)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Every friends-of-friends pair ``(u, v)``: a common neighbour, not friends, not the same node."""
        coo = self.common.tocoo()
        keep = (coo.row != coo.col) & (lookup(self.adjacency, coo.row, coo.col) == 0)
        return coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)

    def pairs(self, u: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
        """Every :data:`PAIR_FEATURES` column for the pairs ``(u[i], v[i])``."""
        columns = pair_columns(lookup(self.common, u, v), lookup(self.adamic_adar, u, v),
                               lookup(self.resource, u, v), self.degree, self.embeddings, u, v)
        if self.profiles is not None:
            columns.update(shared(self.profiles, u, v))
        return columns


def inverse_degrees(degree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adamic–Adar's ``1 / log deg`` (0 for degree <= 1) and resource allocation's ``1 / deg`` (0 for 0)."""
    return (np.where(degree > 1, 1.0 / np.log(np.maximum(degree, 2)), 0.0),
            np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0))


def shared(profiles: EgoProfiles, u: np.ndarray, v: np.ndarray, chunk: int = 200_000) -> dict[str, np.ndarray]:
    """:data:`EGO_FEATURES` of the pairs: attributes and circles both nodes have (row-wise sparse dot products).

    A node the ego networks do not know (a user who joined later) shares nothing."""
    known = np.flatnonzero((u < profiles.attributes.shape[0]) & (v < profiles.attributes.shape[0]))
    out = {}
    for name, matrix in (("shared_attributes", profiles.attributes), ("shared_circles", profiles.circles)):
        values = np.zeros(len(u))
        for start in range(0, len(known), chunk):
            rows = known[start:start + chunk]
            values[rows] = np.asarray(matrix[u[rows]].multiply(matrix[v[rows]]).sum(axis=1)).ravel()
        out[name] = values
    return out


def user_candidates(matrix: sparse.csr_matrix, degree: np.ndarray, embeddings: np.ndarray, user: int,
                    profiles: EgoProfiles | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One user's friends of friends and their features, from the user's row alone (the online path).

    The same values as :class:`GraphFeatures` reads from the whole-graph products.
    """
    row = matrix.getrow(user)
    inverse_log, inverse = inverse_degrees(degree)
    common = (row @ matrix).toarray().ravel()
    friends = np.zeros(matrix.shape[0], bool)
    friends[row.indices] = True
    found = np.flatnonzero((common > 0) & ~friends)
    found = found[found != user]
    scaled = row.multiply(inverse_log[None, :]).tocsr() @ matrix
    allocated = row.multiply(inverse[None, :]).tocsr() @ matrix
    u = np.full(len(found), user, np.int64)
    columns = pair_columns(common[found], scaled.toarray().ravel()[found], allocated.toarray().ravel()[found],
                           degree, embeddings, u, found)
    if profiles is not None:
        columns.update(shared(profiles, u, found))
    return found, columns


def pair_columns(cn: np.ndarray, aa: np.ndarray, ra: np.ndarray, degree: np.ndarray, embeddings: np.ndarray,
                 u: np.ndarray, v: np.ndarray, chunk: int = 500_000) -> dict[str, np.ndarray]:
    """:data:`PAIR_FEATURES` from the neighbourhood sums, degrees and (unit) embeddings of the pairs."""
    du, dv = degree[u], degree[v]
    cosine = np.empty(len(u))
    for start in range(0, len(u), chunk):
        a, b = embeddings[u[start:start + chunk]], embeddings[v[start:start + chunk]]
        cosine[start:start + chunk] = np.einsum("ij,ij->i", a, b)
    union = du + dv - cn
    return {"common_neighbours": cn, "adamic_adar": aa, "resource_allocation": ra,
            "jaccard": np.divide(cn, union, out=np.zeros(len(u)), where=union > 0),
            "preferential_attachment": du * dv, "degree_min": np.minimum(du, dv),
            "degree_max": np.maximum(du, dv), "embedding_cosine": cosine}


def random_walks(matrix: sparse.csr_matrix, walks_per_node: int, length: int, seed: int, *, p: float = 1.0,
                 q: float = 1.0) -> np.ndarray:
    """Random walks, ``walks_per_node`` from every node (isolated nodes stay put): (walks, length).

    node2vec's second-order walk: from ``current``, having come from ``previous``, a neighbour ``x``
    is taken with weight ``1/p`` if it is ``previous``, 1 if it is also a neighbour of ``previous``,
    ``1/q`` otherwise; ``p = q = 1`` is the uniform (DeepWalk) walk. All walks step together: a
    uniform neighbour is proposed and kept with probability ``weight / max weight``, the rejected
    walks propose again (rejection sampling, as KnightKing does), so no per-node alias tables.
    """
    rng = np.random.default_rng(seed)
    indptr, indices = matrix.indptr, matrix.indices
    degree = np.diff(indptr)
    nodes = matrix.shape[0]
    biased = (p, q) != (1.0, 1.0)
    if biased:  # "is x a neighbour of previous" by binary search over every edge's row * n + col
        edge_keys = np.sort(np.repeat(np.arange(nodes, dtype=np.int64), degree) * nodes + indices)
        weights = np.array([1 / p, 1.0, 1 / q])
        top = weights.max()
    walks = np.empty((nodes * walks_per_node, length), np.int64)
    walks[:, 0] = rng.permutation(np.tile(np.arange(nodes), walks_per_node))

    def propose(current: np.ndarray) -> np.ndarray:
        d = degree[current]
        offset = (rng.random(len(current)) * np.maximum(d, 1)).astype(np.int64)
        return np.where(d > 0, indices[np.minimum(indptr[current] + offset, len(indices) - 1)], current)

    for step in range(1, length):
        current = walks[:, step - 1]
        if step == 1 or not biased:
            walks[:, step] = propose(current)
            continue
        previous = walks[:, step - 2]
        pending = np.arange(len(current))
        while len(pending):
            x = propose(current[pending])
            back = x == previous[pending]
            key = previous[pending] * nodes + x
            at = np.minimum(np.searchsorted(edge_keys, key), len(edge_keys) - 1)
            kind = np.where(back, 0, np.where(edge_keys[at] == key, 1, 2))
            keep = (rng.random(len(pending)) * top < weights[kind]) | (degree[current[pending]] == 0)
            walks[pending[keep], step] = x[keep]
            pending = pending[~keep]
    return walks


def node_embeddings(matrix: sparse.csr_matrix, *, dim: int = 64, walks_per_node: int = 10, length: int = 20,
                    window: int = 5, seed: int = 0, p: float = 1.0, q: float = 1.0) -> np.ndarray:
    """node2vec vectors (unit length): :func:`random_walks` (return ``p``, in-out ``q``) fed to skip-gram, one epoch."""
    walks = random_walks(matrix, walks_per_node, length, seed, p=p, q=q)
    return skipgram_vectors(walks.tolist(), matrix.shape[0], dim=dim, window=window, epochs=1, seed=seed)
