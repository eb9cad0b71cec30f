"""Hot-swappable model holder: follows a registry alias and switches versions atomically.

A background thread polls the alias; when it moves, the new version is downloaded, loaded and
warmed up off the request path, then swapped in with one reference assignment. Requests read the
``(pipeline, version)`` pair once, so each is scored by exactly one version and none fails mid-swap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlsd.experiments.ab import CONTROL, TREATMENT, assign_arm
from mlsd.registry import CHALLENGER, CHAMPION, ModelRegistry
from mlsd.registry.mlflow_registry import load_model

log = logging.getLogger(__name__)


class ModelHolder:
    """The serving model of one registered name, kept on the version an alias points at."""

    def __init__(self, registry: ModelRegistry, name: str, alias: str = CHAMPION, poll_interval: float = 10.0,
                 warm_up: Callable[[Any], object] | None = None,
                 loader: Callable[[Path], Any] = load_model) -> None:
        self.registry, self.name, self.alias = registry, name, alias
        self._warm_up, self.loader = warm_up, loader
        pipeline, version = registry.load_with(loader, name, alias=alias)
        self._prepare(pipeline)
        self.current: tuple[Any, str] = (pipeline, version)
        self.swaps = 0
        self.poll_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(poll_interval,), name="model-watch", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str:
        return self.current[1]

    def _prepare(self, pipeline: Any) -> None:
        if self._warm_up is not None:
            self._warm_up(pipeline)

    def check(self) -> bool:
        """Load and switch to the alias's version if it moved; returns whether it switched."""
        version = self.registry.version_for(self.name, self.alias)
        if version == self.current[1]:
            return False
        pipeline, version = self.registry.load_with(self.loader, self.name, version=version)
        self._prepare(pipeline)
        self.current = (pipeline, version)  # one assignment: readers see the old pair or the new one
        self.swaps += 1
        log.info("model %s: now serving version %s", self.name, version)
        return True

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:  # keep serving the current version; the next poll retries
                self.poll_errors += 1
                log.exception("model %s: could not follow alias %s", self.name, self.alias)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Arms:
    """A/B routing: the champion's holder and, with a ``share`` above 0, a challenger holder of the same name.

    A unit (a user, an ip, a query) is hashed to an arm (:func:`~mlsd.experiments.ab.assign_arm`), so it
    sees one model for the whole test; both holders follow their aliases on their own.
    """

    def __init__(self, champion: ModelHolder, share: float, experiment: str, poll_interval: float = 10.0,
                 warm_up: Callable[[Any], object] | None = None) -> None:
        self.champion, self.share, self.experiment = champion, share, experiment
        self.challenger = ModelHolder(champion.registry, champion.name, CHALLENGER, poll_interval, warm_up,
                                      champion.loader) if share > 0 else None

    def pick(self, unit: object) -> tuple[str, Any, str]:
        """``(arm, model, version)`` for ``unit``."""
        if self.challenger is not None and assign_arm(unit, self.experiment, self.share) == TREATMENT:
            return (TREATMENT, *self.challenger.current)
        return (CONTROL, *self.champion.current)

    def close(self) -> None:
        self.champion.close()
        if self.challenger is not None:
            self.challenger.close()
