"""``mlsd run listings``: clicks -> event log -> session state -> models per seed -> registry -> online store.

The clicks of sessions before SR-GNN's test split are ingested (validated, deduplicated) and their
session state materialized, so ``mlsd serve listings`` starts where training ends; the test
sessions are the traffic ``mlsd replay listings`` sends, click by click. Two versions are
registered: the blend (seed 0) and the last-item transitions peer, each with a reference profile
of its listed items' signals on the validation prefixes; promotion compares them on validation
reciprocal rank per prefix.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow.compute as pc

from mlsd.core.atomic import atomic_write_json
from mlsd.core.timeutil import US_PER_S
from mlsd.events import EventLog, Ingestor
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, code_revision
from mlsd.registry.promotion import promote
from mlsd.system import Workspace
from mlsd.systems.listings import train
from mlsd.systems.listings.data import CLICK_SCHEMA, DATASET, Prefixes, click_events, load_sessions
from mlsd.systems.listings.features import SESSION_VIEW, listings_views
from mlsd.systems.listings.model import SIGNALS, SessionRecommender
from mlsd.systems.listings.simulate import write_traffic

MODEL_NAME = "listings-diginetica"
PROFILE_FILE = "profile.json"


def profile_of(model: SessionRecommender, valid: Prefixes) -> DatasetProfile:
    """The listed items' signals and scores over the validation prefixes (the monitor's reference)."""
    lists = [model.recommend(p, train.K) for p in valid.prefixes]
    profile = DatasetProfile.build({s: np.concatenate([r.signals[s] for r in lists]) for s in SIGNALS})
    profile.columns[PREDICTION] = NumericProfile.build(np.concatenate([r.scores for r in lists]))
    return profile


def build_listings(ws: Workspace, data: str | None, *, small: bool = False, progress: bool = True) -> dict[str, Any]:
    say: train.Progress = print if progress else (lambda _: None)
    started = time.perf_counter()
    ws.home.mkdir(parents=True, exist_ok=True)
    clicks, sessions = load_sessions(data)
    events = click_events(clicks)
    history = events.filter(pc.less(events["ts"], sessions.split_s))  # the training period only
    with EventLog(ws.events("clicks"), CLICK_SCHEMA) as log:
        report = Ingestor(log).ingest_table(history, DATASET)
        say(f"ingested {report.accepted:,} clicks before the test split ({report.duplicates:,} already in the log, "
            f"{report.rejected} rejected); {events.num_rows - history.num_rows:,} later clicks are replay traffic")
        results, runs, valid_prefixes = train.evaluate_all(sessions, 1 if small else 5, say)
        served = runs[0]
        lineage = Lineage(f"{DATASET}:{len(log)}", {SESSION_VIEW: 1}, code_revision())
        candidates = {"session_blend": (served.model, served.valid_model),
                      "last_item": (served.model.with_weights({"forward": 1.0}),
                                    served.valid_model.with_weights({"forward": 1.0}))}
        scores, names = {}, {}
        for family, (model, on_part) in candidates.items():
            profile = ws.home / "profiles" / family / PROFILE_FILE
            profile.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(profile, profile_of(on_part, valid_prefixes).to_dict())
            summary = results["models"][family]
            version = ws.registry.register(
                MODEL_NAME, model, params={"family": family, **{f"w_{k}": v for k, v in model.weights.items()},
                                           **model.params},
                metrics={"test_hr_at_20": summary["hr@20"], "test_mrr_at_20": summary["mrr@20"]},
                lineage=lineage, experiment="listings", run_name=family, artifacts=[profile])
            scores[version.version] = train.score(on_part, valid_prefixes).rr
            names[version.version] = family
        promotion = promote(ws.registry, MODEL_NAME, scores)
        results["served"] = {"champion": promotion.champion, "champion_family": names[promotion.chosen],
                             "challenger": promotion.challenger, "versions": names,
                             "split_s": sessions.split_s, "promoted_on": "validation MRR@20 per prefix"}
        results["replay_requests"] = write_traffic(ws, sessions)
        store = ws.feature_store(listings_views(log))
        written = store.materialize(end_us=sessions.split_s * US_PER_S)
        store.online.close()
    say(f"materialized {written.get(SESSION_VIEW, 0):,} sessions; champion v{promotion.champion} "
        f"({names[promotion.chosen]}), chosen on validation MRR@20")
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(ws.run_file, results)
    return results
