"""Similar listings features: a session's state, kept by the stream feature store from its clicks.

``session_state`` per session: how many clicks it has and its last :data:`SESSION_ITEMS` items
(``nth_last``, 1 = the latest). The build materializes it for the training period; while serving,
each click updates it through the stream processor, and the model reads the items back oldest
first (:func:`session_items`), exactly the prefix it was evaluated on offline. A session idle for
:data:`SESSION_TTL` is over: its clicks count no more, offline and online, and the stream processor
forgets it, so the served state holds the sessions of the last day, not every session ever seen.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlsd.events import EventLog
from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource
from mlsd.features.definitions import AnyView
from mlsd.features.offline import output_column
from mlsd.systems.listings.model import SESSION_ITEMS

SESSION = Entity("session", ("session_id",))
SESSION_VIEW = "session_state"
SESSION_TTL = "1d"  # Diginetica's sessions last minutes; a day keeps every one of them whole


def listings_views(log: EventLog) -> list[AnyView]:
    return [AggregationView(SESSION_VIEW, (SESSION,), EventLogSource(log), (
        Aggregation("count", name="clicks"),
        *(Aggregation("nth_last", "item_id", n=n, name=f"item_{n}") for n in range(1, SESSION_ITEMS + 1)),
    ), ttl=SESSION_TTL)]


def session_items(columns: Mapping[str, np.ndarray], row: int = 0) -> list[int]:
    """The raw item ids of one session's state, oldest first (missing places dropped)."""
    values = [columns[output_column(SESSION_VIEW, f"item_{n}")][row] for n in range(SESSION_ITEMS, 0, -1)]
    return [int(v) for v in values if not np.isnan(v)]
