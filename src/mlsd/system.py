"""The System API: what a reference system provides, where it keeps its state, and how it is found.

A system is one package (anywhere) plus one entry-point line in its project's metadata::

    [project.entry-points."mlsd.plugins.systems"]
    NAME = "PACKAGE:SYSTEM"

The registry reads entry-point *names* without importing anything, and imports a system's module
only when that system is asked for, so ``mlsd --help`` and ``mlsd systems`` stay free of torch. A
system's object must be cheap to import: heavy modules are imported inside its methods.

Every CLI verb (``run``, ``serve``, ``replay``, ``report``, ``demo``) works on any system through
this protocol; options only one system has are declared by it as :class:`Option` values. Optional
members, used when present: ``json_summary(results)`` (the ``mlsd run --json`` shape), ``demo(out,
config, speed, drift=, drift_at_hours=)`` (its own ``mlsd demo``), ``window_s`` (the monitoring
window its traffic needs, the default of ``mlsd serve --window-s``), ``compute_threads`` (intra-op
threads of a serving process, default 1) and ``engines`` (the ``mlsd run --engine`` values its build
honours, default ``("embedded",)``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlsd.core.errors import MlsdError

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.features.definitions import AnyView
    from mlsd.monitoring.drift import DriftThresholds
    from mlsd.registry import ModelRegistry
    from mlsd.reporting.design import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

ENTRY_POINT_GROUP = "mlsd.plugins.systems"  # the platform names no system module
RUN_FILE = "run.json"


class TaskType(enum.StrEnum):
    """What a system predicts; it picks the offline metrics, the online monitor, the replay and the skew check."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    RANKING = "ranking"
    RETRIEVAL = "retrieval"


@dataclass(frozen=True)
class Option:
    """A command-line option only one system has (``--dataset``, ``--models``), for the verbs it names."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[Any, ...] | None = None
    verbs: tuple[str, ...] = ("run",)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class RunConfig:
    """What ``mlsd run`` passes to :meth:`System.build`: the data directory, progress and the system's options."""

    data: str | None = None
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    small: bool = False  # a quick build on a small slice of the data (the check kit's, a smoke test's)
    engine: str = "embedded"  # "ray": training frames and PyTorch fits on Ray (mlsd.scale.engines)
    workers: int = 2  # Ray Train workers under engine "ray"


@dataclass
class ServeConfig:
    """What ``mlsd serve`` passes to :meth:`System.service`: A/B share and monitor settings, plus options."""

    ab_share: float = 0.0
    window_s: float = 3600.0
    label_delay_s: float = 600.0
    drift_psi: float = 0.25
    drift_js: float = 0.18
    drift_p: float = 0.001
    options: dict[str, Any] = field(default_factory=dict)

    def thresholds(self) -> DriftThresholds:
        """The monitor's drift thresholds these options set."""
        from mlsd.monitoring.drift import DriftThresholds

        return DriftThresholds(psi=self.drift_psi, js=self.drift_js, p_value=self.drift_p)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


@dataclass
class ReplayConfig:
    """What ``mlsd replay`` passes to :meth:`System.traffic`."""

    speed: float | None = None
    label_delay_s: float = 600.0
    limit: int | None = None
    drift_at_hours: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


class Workspace:
    """A system's home directory and everything kept in it, built in one place.

    ``events/`` (the durable event logs), ``online.db`` (the embedded online store), the MLflow registry
    (``mlflow.db`` and ``mlartifacts/``, or ``MLFLOW_TRACKING_URI``), ``feature_log/``, ``labels/``,
    ``monitoring/``, ``report.html`` and ``run.json`` (what the last build left to serve).
    """

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)

    def __repr__(self) -> str:
        return f"Workspace({str(self.home)!r})"

    def events(self, name: str) -> Path:
        return self.home / "events" / name

    @property
    def online_db(self) -> Path:
        return self.home / "online.db"

    @property
    def feature_log(self) -> Path:
        return self.home / "feature_log"

    @property
    def labels(self) -> Path:
        return self.home / "labels"

    @property
    def monitoring(self) -> Path:
        return self.home / "monitoring"

    @property
    def report_path(self) -> Path:
        return self.home / "report.html"

    @property
    def run_file(self) -> Path:
        return self.home / RUN_FILE

    @cached_property
    def registry(self) -> ModelRegistry:
        from mlsd.registry import ModelRegistry

        self.home.mkdir(parents=True, exist_ok=True)
        return ModelRegistry(self.home)

    def feature_store(self, views: Sequence[AnyView], online_db: Path | None = None) -> FeatureStore:
        """A feature store over this home's embedded online store (SQLite) and DuckDB offline store."""
        from mlsd.features import FeatureStore, OfflineStore, open_online_store

        self.home.mkdir(parents=True, exist_ok=True)
        return FeatureStore(open_online_store(online_db or self.online_db), OfflineStore(), views)

    def run_state(self) -> dict[str, Any] | None:
        """What the last build wrote to ``run.json`` (None before any build)."""
        if not self.run_file.exists():
            return None
        state: dict[str, Any] = json.loads(self.run_file.read_text())
        return state


@runtime_checkable
class System(Protocol):
    """One of the book's systems, on the platform's public API (see ``systems/<name>/``)."""

    name: str
    task: TaskType
    summary: str
    datasets: tuple[str, ...]  # registry names the system trains on, first = served
    options: tuple[Option, ...]
    model_name: str  # the registered model its service follows
    route: str  # the service's scoring route (POST)

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        """ingest -> features -> train -> register -> promote; returns the results written to ``run.json``."""
        ...

    def format_results(self, results: Mapping[str, Any]) -> str:
        """The build's results as the text table ``mlsd run`` prints."""
        ...

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        """The scoring service of the champion (and the challenger when ``config.ab_share`` > 0)."""
        ...

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        """The held-out period as requests with their later labels, for ``mlsd replay``."""
        ...

    def report(self, ws: Workspace, report: DesignReport) -> None:
        """Fill the seven steps of the design report with this system's facts and artefacts."""
        ...


def system_names() -> list[str]:
    """Every registered system's name, from entry-point metadata only (nothing is imported)."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_system(name: str) -> System:
    """The registered system ``name`` (its module is imported now); :class:`MlsdError` when unknown."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(system_names()) or "none"
        raise MlsdError(f"unknown system {name!r}; registered systems: {known}")
    system = found[0].load()
    if not isinstance(system, System):
        raise MlsdError(f"entry point {found[0].value} is not an mlsd System")
    return system


COMMAND_GROUP = "mlsd.plugins.commands"  # verbs a system package adds to the CLI (walkthrough, ope)


def load_command(name: str) -> Callable[..., Any]:
    """The CLI verb ``name`` a system package registers under :data:`COMMAND_GROUP` (imported now)."""
    found = [ep for ep in entry_points(group=COMMAND_GROUP) if ep.name == name]
    if not found:
        raise MlsdError(f"no installed package provides the command {name!r} (entry point group {COMMAND_GROUP})")
    command: Callable[..., Any] = found[0].load()
    return command


def system_state(system: System, ws: Workspace, data: str | None) -> dict[str, Any]:
    """What ``mlsd systems`` shows: the task, which datasets verify under ``data``, trained? champion?"""
    from mlsd.datasets import DATASETS, locate

    found = []
    for dataset in system.datasets:
        if dataset not in DATASETS:
            continue
        try:
            locate(dataset, data)
            found.append(dataset)
        except MlsdError:
            pass
    state = ws.run_state()
    champion = None
    if state is not None and (ws.home / "mlflow.db").exists():
        try:
            champion = ws.registry.version_for(system.model_name, "champion")
        except MlsdError:
            champion = None
    return {"system": system.name, "task": str(system.task), "summary": system.summary,
            "datasets": list(system.datasets), "datasets_found": found, "trained": state is not None,
            "champion": champion, "home": str(ws.home)}


def option_values(system: System, verb: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The system's options for ``verb`` from parsed CLI values (defaults where absent)."""
    return {o.name: values.get(o.name, o.default) for o in system.options if verb in o.verbs}
