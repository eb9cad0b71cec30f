"""People you may know: sparse graph features (batch = online), protocols' pieces, the service, the whole loop."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from mlsd.simulation.process import ServerProcess
from mlsd.system import Workspace, load_system
from mlsd.systems.pymk.data import EgoProfiles
from mlsd.systems.pymk.graph import GraphFeatures, adjacency, random_walks, shared, user_candidates
from mlsd.systems.pymk.train import choose_walk, hide_edges, non_edges, top_lists
from mlsd.testing import check_system
from tests.conftest import QuickBuilds

DATA = os.environ.get("MLSD_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")


def _graph(seed: int = 0, nodes: int = 60, edges: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs = np.sort(rng.integers(0, nodes, (edges, 2)), axis=1)
    return np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)


def test_pair_features_by_hand() -> None:
    # a path 0-1-2 and a triangle 1-3-2: 0 and 2 share neighbour 1; 0 and 3 share 1
    matrix = adjacency(np.array([[0, 1], [1, 2], [1, 3], [2, 3]]), 4)
    vectors = np.eye(4, dtype=np.float32)
    graph = GraphFeatures.build(matrix, vectors)
    u, v = graph.candidates()
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(0, 2), (0, 3), (2, 0), (3, 0)]
    f = graph.pairs(np.array([0]), np.array([2]))
    assert f["common_neighbours"][0] == 1
    assert f["adamic_adar"][0] == pytest.approx(1 / np.log(3))  # neighbour 1 has degree 3
    assert f["resource_allocation"][0] == pytest.approx(1 / 3)
    assert f["jaccard"][0] == pytest.approx(1 / 2)  # {1} of {1, 3}
    assert f["preferential_attachment"][0] == 2
    assert f["embedding_cosine"][0] == 0


def _profiles(nodes: int, known: int, seed: int = 2) -> EgoProfiles:
    """Random binary attributes and circles for the first ``known`` of ``nodes`` nodes."""
    rng = np.random.default_rng(seed)

    def binary(width: int, p: float) -> sparse.csr_matrix:
        values = (rng.random((nodes, width)) < p) & (np.arange(nodes) < known)[:, None]
        return sparse.csr_matrix(values.astype(np.float32))

    return EgoProfiles(binary(30, 0.2), binary(5, 0.3))


def test_shared_attributes_and_circles_by_hand() -> None:
    attributes = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], np.float32))
    circles = sparse.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], np.float32))
    got = shared(EgoProfiles(attributes, circles), np.array([0, 0, 1, 2, 5]), np.array([1, 2, 2, 0, 0]))
    assert got["shared_attributes"].tolist() == [2, 0, 1, 0, 0]  # node 5 is no ego network's: shares nothing
    assert got["shared_circles"].tolist() == [1, 0, 1, 0, 0]


def test_online_path_equals_the_batch_features() -> None:
    edges = _graph()
    matrix = adjacency(edges, 60)
    vectors = np.random.default_rng(1).normal(size=(60, 4)).astype(np.float32)
    profiles = _profiles(60, known=50)  # the last 10 joined after the ego networks were collected
    graph = GraphFeatures.build(matrix, vectors, profiles)
    u, v = graph.candidates()
    for user in range(0, 60, 7):
        found, columns = user_candidates(matrix, graph.degree, vectors, user, profiles)
        assert sorted(found.tolist()) == sorted(v[u == user].tolist())
        assert {"shared_attributes", "shared_circles"} <= set(columns)
        batch = graph.pairs(np.full(len(found), user), found)
        for name, values in columns.items():
            np.testing.assert_allclose(values, batch[name], rtol=1e-12, err_msg=name)


def test_hidden_edges_keep_the_graph_connected_and_non_edges_are_non_edges() -> None:
    from scipy.sparse import csgraph

    edges = _graph(2, nodes=40, edges=400)
    rng = np.random.default_rng(0)
    kept, hidden = hide_edges(edges, 0.5, rng, connected=True)
    full = adjacency(edges, 40)
    assert len(hidden) == round(0.5 * len(edges))
    assert len(kept) + len(hidden) == len(edges)
    assert csgraph.connected_components(adjacency(kept, 40))[0] == csgraph.connected_components(full)[0]
    negatives = non_edges(full, 50, rng)
    assert len(np.unique(negatives, axis=0)) == 50
    assert not np.asarray(full[negatives[:, 0], negatives[:, 1]]).any()


def test_walks_follow_edges_and_lists_are_ordered() -> None:
    matrix = adjacency(_graph(), 60)
    walks = random_walks(matrix, 2, 6, seed=0)
    steps = np.asarray(matrix[walks[:, :-1].ravel(), walks[:, 1:].ravel()]).ravel()
    isolated = np.diff(matrix.indptr)[walks[:, :-1].ravel()] == 0
    assert (steps[~isolated] == 1).all()
    assert (random_walks(matrix, 2, 6, seed=0, p=1.0, q=1.0) == walks).all()  # p = q = 1: the uniform walk
    lists = top_lists(np.array([1, 1, 1, 2]), np.array([5, 6, 7, 5]), np.array([0.1, 0.9, 0.9, 0.3]), 2)
    assert lists[1][0].tolist() == [6, 7]
    assert lists[2][0].tolist() == [5]


def test_node2vec_walks_take_each_second_step_with_the_papers_weights() -> None:
    """From node 1 having come from 0: back to 0 (1/p), to 2 (also 0's neighbour: 1), to 3 or 4 (1/q each)."""
    matrix = adjacency(np.array([[0, 1], [0, 2], [1, 2], [1, 3], [1, 4]]), 5)
    p, q = 0.5, 4.0
    walks = random_walks(matrix, 40_000, 3, seed=0, p=p, q=q)
    came = walks[(walks[:, 0] == 0) & (walks[:, 1] == 1)]
    shares = np.bincount(came[:, 2], minlength=5)[[0, 2, 3, 4]] / len(came)
    weights = np.array([1 / p, 1.0, 1 / q, 1 / q])
    assert np.allclose(shares, weights / weights.sum(), atol=0.01), shares
    steps = np.asarray(matrix[walks[:, :-1].ravel(), walks[:, 1:].ravel()]).ravel()
    assert (steps == 1).all()  # every step still follows an edge


def test_the_walk_is_chosen_by_the_fitting_pairs_alone() -> None:
    edges = _graph()
    matrix = adjacency(edges, 60)
    rng = np.random.default_rng(0)
    pairs = np.concatenate([edges[:40], rng.integers(0, 60, (40, 2))])
    labels = np.concatenate([np.ones(40), np.zeros(40)])
    walk, _, scores = choose_walk(matrix, pairs, labels, seed=0, grid=((1.0, 1.0), (0.25, 4.0)))
    assert set(scores) == {"p=1,q=1", "p=0.25,q=4"}
    assert scores[f"p={walk[0]:g},q={walk[1]:g}"] == max(scores.values())


def test_refresh_files_are_merged_keeping_every_row(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from mlsd.systems.pymk.features import compact_lists, write_lists

    def rows() -> set[tuple]:
        table = pq.read_table(tmp_path)  # the directory, as the lists view reads it
        friend = [f if f == f else -1.0 for f in table["friend_1"].to_pylist()]  # NaN (none listed) != NaN
        at = table["event_timestamp"].cast("int64").to_pylist()
        return set(zip(table["user_id"].to_pylist(), at, table["size"].to_pylist(), friend, strict=True))

    write_lists({0: (np.array([5, 6]), np.array([0.9, 0.1])), 1: (np.zeros(0, np.int64), np.zeros(0))}, 100, tmp_path)
    for at in (200, 300, 400):
        write_lists({at // 100: (np.array([at]), np.array([0.5]))}, at, tmp_path, name=f"refresh-{at}.parquet")
    before = rows()
    assert compact_lists(tmp_path, limit=4) == 0  # three refreshes: not yet
    assert compact_lists(tmp_path, limit=3) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compacted-400.parquet", "lists.parquet"]
    assert rows() == before
    # a crash after the merged file was written but before its sources went: the next merge keeps one of each
    write_lists({4: (np.array([400]), np.array([0.5]))}, 400, tmp_path, name="refresh-400.parquet")
    write_lists({5: (np.array([1]), np.array([0.2]))}, 500, tmp_path, name="refresh-500.parquet")
    assert compact_lists(tmp_path, limit=2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compacted-500.parquet", "lists.parquet"]
    assert pq.read_table(tmp_path / "compacted-500.parquet").num_rows == 4
    assert rows() == before | {(5, 500, 1.0, 1.0)}


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_check_system_pymk(quick_builds: QuickBuilds) -> None:
    """The whole loop; each replayed user's held-out friends score the precomputed list online."""
    home, results = quick_builds.copy("pymk")
    facts = check_system(load_system("pymk"), home, data=DATA, replay_requests=100, built=results)
    assert facts["monitor"]["rows"] >= 95  # users whose list is empty (no friend of a friend) are not scored
    run = json.loads((home / "run.json").read_text())
    assert run["node2vec_protocol"]["auc"] > run["node2vec_protocol"]["adamic_adar_auc"] > 0.95
    assert run["precompute"]["users"] == 4039  # every user, those with nothing to suggest included


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_a_new_champion_gets_every_list_re_precomputed(small_home: Callable[[str], Path]) -> None:
    """A promotion leaves the lists to the old champion: served online until the refresh re-lists everyone."""
    from mlsd.registry import CHAMPION
    from mlsd.systems.pymk.build import MODEL_NAME
    from mlsd.systems.pymk.serve import PymkService

    ws = Workspace(small_home("pymk"))
    service = PymkService(ws.home, refresh_s=None)
    built = service.lists_version
    other = next(v.version for v in ws.registry.versions(MODEL_NAME) if v.version != built)
    user = 0
    before, _ = service.score({"user_id": user, "k": 10}, "a")
    assert user in service._rows  # kept in memory: the re-listing below must not serve it again
    ws.registry.set_alias(MODEL_NAME, CHAMPION, other)
    assert service.models.check()
    online, _ = service.score({"user_id": user, "k": 10}, "b")
    assert (online["path"], online["model_version"]) == ("online", other)
    assert [r["user_id"] for r in online["ranked"]] != [r["user_id"] for r in before["ranked"]]
    assert service.refresh() == service.graph.shape[0]  # every user, whatever the batch limit
    assert service.lists_version == other
    listed, _ = service.score({"user_id": user, "k": 10}, "c")
    assert listed["path"] == "precomputed"
    assert [r["user_id"] for r in listed["ranked"]] == [r["user_id"] for r in online["ranked"]]
    np.testing.assert_allclose([r["score"] for r in listed["ranked"]], [r["score"] for r in online["ranked"]])
    assert service.refresh() == 0  # nothing left to do
    service.close()
    reopened = PymkService(ws.home, refresh_s=None)  # the store says whose lists it holds
    assert reopened.lists_version == other
    assert reopened.score({"user_id": user, "k": 10}, "d")[0]["path"] == "precomputed"
    reopened.close()


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_a_new_friendship_changes_the_next_answer(small_home: Callable[[str], Path]) -> None:
    from mlsd.core.errors import MlsdError
    from mlsd.systems.pymk.serve import PymkService

    ws = Workspace(small_home("pymk"))
    service = PymkService(ws.home, refresh_s=None)  # refreshed by hand below
    assert not service.stale
    answer, _ = service.score({"user_id": 0, "k": 10}, "a")
    assert answer["path"] == "precomputed"
    assert len(answer["ranked"]) == 10
    service.stale[0] = 0  # the online path gives the precomputed list exactly
    online, _ = service.score({"user_id": 0, "k": 10}, "b")
    assert online["path"] == "online"
    assert [r["user_id"] for r in online["ranked"]] == [r["user_id"] for r in answer["ranked"]]
    np.testing.assert_allclose([r["score"] for r in online["ranked"]], [r["score"] for r in answer["ranked"]])
    del service.stale[0]
    # users whose friendships were all held out have an empty list, answered by the lookup, not recomputed
    friendless = int(np.flatnonzero(service.degree == 0)[0])
    empty, _ = service.score({"user_id": friendless, "k": 10}, "z")
    assert (empty["path"], empty["ranked"]) == ("precomputed", [])
    # a newcomer befriends user 0: user 0's friends now see the newcomer as a friend of a friend
    friend = int(service.graph.indices[service.graph.indptr[0]])
    before, _ = service.score({"user_id": friend, "k": 20}, "c")
    assert before["path"] == "precomputed"
    taken = service.intake({"edges": [{"user_id": 0, "friend_id": 5000, "timestamp": 1_341_200_000}]})
    again = service.intake({"edges": [{"user_id": 0, "friend_id": 5000, "timestamp": 1_341_200_000}]})
    assert taken == {"accepted": 1, "duplicates": 0}
    assert again == {"accepted": 0, "duplicates": 1}
    after, _ = service.score({"user_id": friend, "k": 20}, "d")
    assert after["path"] == "online"
    newcomer, _ = service.score({"user_id": 5000, "k": 5}, "e")
    assert newcomer["path"] == "online"
    assert len(newcomer["ranked"]) == 5
    with pytest.raises(MlsdError, match="friend_id"):
        service.intake({"edges": [{"user_id": 3, "friend_id": 3}]})
    stale = set(service.stale)
    assert {0, 5000, friend} <= stale
    service.close()

    def ids(answer: dict) -> list[int]:
        return [r["user_id"] for r in answer["ranked"]]

    # The friendship is durable, and a restart marks stale again whoever it touched: no list older than
    # the graph is ever served.
    reopened = PymkService(ws.home, refresh_s=None)
    assert reopened.graph[0, 5000] == 1
    assert set(reopened.stale) == stale
    assert reopened.score({"user_id": friend, "k": 20}, "f")[0]["path"] == "online"
    # An incremental refresh writes their lists to the lists view: the lookup serves them again.
    assert reopened.refresh(limit=None) == len(stale)
    assert not reopened.stale
    looked_up, _ = reopened.score({"user_id": friend, "k": 20}, "g")
    assert looked_up["path"] == "precomputed"
    assert ids(looked_up) == ids(after)
    np.testing.assert_allclose([r["score"] for r in looked_up["ranked"]], [r["score"] for r in after["ranked"]])
    assert reopened.score({"user_id": 5000, "k": 5}, "h")[0]["path"] == "precomputed"
    reopened.close()
    # The background refresher does the same on its own; what it refreshed stays fresh after a restart.
    third = PymkService(ws.home, refresh_s=0.05)
    assert not third.stale
    assert third.score({"user_id": friend, "k": 20}, "i")[0]["path"] == "precomputed"
    neighbour = int(third.graph.indices[third.graph.indptr[1]])  # user 1's friend: 5001 becomes a candidate
    assert third.score({"user_id": neighbour, "k": 20}, "k")[0]["path"] == "precomputed"
    assert neighbour in third._rows
    third.intake({"edges": [{"user_id": 1, "friend_id": 5001}]})
    waited = 0.0
    while third.stale and waited < 20:
        time.sleep(0.05)
        waited += 0.05
    assert not third.stale
    assert neighbour not in third._rows  # the refresh dropped every row read before it wrote
    model = third.models.current[0]
    served, _ = third.score({"user_id": neighbour, "k": 20}, "l")
    assert served["path"] == "precomputed"
    expected = third._online(model, neighbour, 20)  # type: ignore[arg-type]
    assert ids(served) == expected[0].tolist()
    assert third.score({"user_id": 5001, "k": 5}, "j")[0]["path"] == "precomputed"
    assert third.health()["refreshed_users"] > 0
    third.close()
    with ServerProcess("pymk", ws.home) as server:  # GET reads the same answer as POST, through the same checks
        status, got = server.client.request("GET", "/v1/pymk/7?k=3")
        assert status == 200
        assert len(got["ranked"]) == 3
        status, posted = server.client.request("POST", "/v1/pymk/recommend", {"user_id": 7, "k": 3})
        assert [r["user_id"] for r in posted["ranked"]] == [r["user_id"] for r in got["ranked"]]
        status, problem = server.client.request("GET", "/v1/pymk/7?k=abc")
        assert status == 422
        assert problem["errors"][0]["field"] == "k"
        status, problem = server.client.request("GET", "/v1/pymk/7?k=999")
        assert status == 422
        assert "k" in json.dumps(problem)
        status, spec = server.client.request("GET", "/openapi.json")
        assert "/v1/pymk/{user_id}" in spec["paths"]
