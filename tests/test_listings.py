"""Similar listings: SR-GNN's preprocessing, the session recommender, the session state, the whole loop."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlsd.monitoring.runner import read_state
from mlsd.system import load_system
from mlsd.systems.listings.data import DAY_S, Click, prefixes, srgnn_sessions
from mlsd.systems.listings.model import SessionRecommender, transition_matrix
from mlsd.testing import check_system
from tests.conftest import QuickBuilds

DATA = os.environ.get("MLSD_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")


def _clicks(rows: list[tuple[int, int, int, int]]) -> list[Click]:
    return [Click(session, item, frame, day * DAY_S) for session, item, frame, day in rows]


def test_srgnn_preprocessing_by_hand() -> None:
    rows = []
    # items 1..3 are clicked at least 5 times; item 9 four times; item 8 twice
    for s in range(1, 4):  # day 0: training sessions
        rows += [(s, 1, 10, 0), (s, 2, 5, 0), (s, 3, 20, 0)]  # ordered by timeframe: 2, 1, 3
    rows += [(4, 9, 1, 0), (4, 9, 2, 0), (4, 9, 3, 0), (4, 9, 4, 0)]  # only item 9: dropped after filtering
    rows += [(5, 8, 1, 0)]  # one click: dropped
    rows += [(6, 2, 1, 8), (6, 1, 2, 8), (6, 3, 3, 8)]  # day 8: test (after the last day minus 7)
    rows += [(7, 1, 1, 1), (7, 8, 2, 1)]  # item 8 dropped (seen once): one click left, session dropped
    rows += [(8, 1, 1, 1), (8, 2, 2, 1)]  # day 1 = last day minus 7: neither train nor test, as in SR-GNN
    rows += [(9, 3, 1, 0), (9, 1, 2, 0)]  # item 3's fifth click
    sessions = srgnn_sessions(_clicks(rows))
    assert sessions.train_ids == [1, 2, 3, 9]
    # renumbered from 1 in training order: raw 2 -> 1, 1 -> 2, 3 -> 3
    assert sessions.train == [[1, 2, 3]] * 3 + [[3, 2]]
    assert sessions.raw([1, 2, 3]) == [2, 1, 3]
    assert sessions.test_ids == [6]
    assert sessions.test == [[1, 2, 3]]
    assert sessions.test_times == [[8 * DAY_S, 8 * DAY_S, 8 * DAY_S]]
    made = prefixes(sessions.test)
    assert made.prefixes == [[1, 2], [1]]
    assert made.targets.tolist() == [3, 2]


def _toy_model(weights: dict[str, float]) -> SessionRecommender:
    sessions = [[1, 2, 3], [1, 2, 4], [2, 3, 1], [4, 5, 4]]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return SessionRecommender(np.array([-1, 10, 20, 30, 40, 50]), transition_matrix(sessions, 5), vectors, weights)


def test_transitions_only_lists_the_last_items_successors() -> None:
    model = _toy_model({"forward": 1.0})
    listed = model.recommend([1, 2], k=5)
    assert listed.items.tolist() == [3, 4]  # 2 -> 3 once, 2 -> 4 once; nothing else is a candidate
    assert model.recommend([], k=2).items.tolist()[0] in (1, 2, 4)  # no known item: the most popular


def test_recency_and_embedding_bring_their_candidates(tmp_path: Path) -> None:
    model = _toy_model({"forward": 1.0, "recency": 4.0, "embedding": 0.1})
    listed = model.recommend([5, 1], k=5)
    assert listed.items[0] == 1  # the item clicked last weighs 4 * 1
    assert 5 in listed.items.tolist()  # re-clicks are candidates
    model.save(tmp_path / "m")
    again = SessionRecommender.load(tmp_path / "m")
    same = again.recommend([5, 1], k=5)
    assert same.items.tolist() == listed.items.tolist()
    np.testing.assert_allclose(same.scores, listed.scores)


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_check_system_listings(quick_builds: QuickBuilds) -> None:
    """The whole loop; the replay's clicks are the offline test prefixes, so online hit@20 = offline HR@20."""
    home, results = quick_builds.copy("listings")
    facts = check_system(load_system("listings"), home, data=DATA, replay_requests=200, built=results)
    run = json.loads((home / "run.json").read_text())
    # the kit's own first request is one more scored click (no label), and a second click of that session
    assert facts["monitor"]["rows"] == run["test_prefixes"] + 1 == 100
    windows = read_state(home / "monitoring")["windows"]
    rows = np.array([w["labels"]["all"]["rows"] for w in windows], float)
    hits = np.array([w["labels"]["all"]["hit@20"] for w in windows], float)
    online_hits = float((rows * hits).sum())
    offline_hits = run["models"]["session_blend"]["hr@20"] * run["test_prefixes"] / 100
    assert abs(online_hits - offline_hits) <= 2  # the same prefixes through HTTP and the session state


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_a_click_updates_its_session_and_survives_a_restart(small_home: Callable[[str], Path]) -> None:
    from mlsd.system import Workspace
    from mlsd.systems.listings.serve import ListingsService

    ws = Workspace(small_home("listings"))
    service = ListingsService(ws.home)
    first, _ = service.score({"session_id": 999_999, "item_id": 81766, "timestamp": 1_464_000_000}, "r1")
    answer, record = service.score({"session_id": 999_999, "item_id": 31331, "timestamp": 1_464_000_010}, "r2")
    again, _ = service.score({"session_id": 999_999, "item_id": 31331, "timestamp": 1_464_000_010}, "r2")
    assert first["session"] == [81766]
    assert answer["session"] == [81766, 31331]
    assert again["session"] == [81766, 31331]  # a resent request (same id) is one click
    assert len(answer["ranked"]) == 20
    assert record.items == [str(x["item_id"]) for x in answer["ranked"]]
    service.close()  # the last clicks reach the log on close
    service = ListingsService(ws.home)
    later, _ = service.score({"session_id": 999_999, "item_id": 9654, "timestamp": 1_464_000_020}, "r3")
    assert later["session"] == [81766, 31331, 9654]
    service.close()
