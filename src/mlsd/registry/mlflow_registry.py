"""The model registry on MLflow: runs with parameters, metrics and artefacts; versions with lineage and aliases.

By default MLflow keeps everything under the project's home directory (a SQLite tracking/registry
database and a local artefact folder), so no server is needed; ``MLFLOW_TRACKING_URI`` (or the
``tracking_uri`` argument) points it at a server instead. A model is stored as the directory its
``save`` writes (a click pipeline, a recommender, a ranker) plus ``mlsd_model.json`` naming the class
whose ``load`` reads it back: JSON, LightGBM text, FAISS index files and weights-only state dicts,
never pickle. The registry knows no model kind by name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlsd.core.errors import MlsdError
from mlsd.core.paths import home_dir
from mlsd.core.timeutil import utc_text

T = TypeVar("T")


class Savable(Protocol):
    """A model that writes itself to a directory of safe files; its class's ``load(directory)`` reads it back."""

    def save(self, directory: Path) -> None: ...


KIND_FILE = "mlsd_model.json"


def _write_kind(model: Savable, directory: Path) -> None:
    kind = type(model)
    (directory / KIND_FILE).write_text(json.dumps({"loader": f"{kind.__module__}:{kind.__qualname__}"}))


def load_model(directory: Path) -> Any:
    """Load a saved model with the ``load`` of the class its ``mlsd_model.json`` names."""
    import importlib

    meta_path = directory / KIND_FILE
    if not meta_path.exists():
        raise MlsdError(f"{directory} has no {KIND_FILE}: not a model saved through the registry")
    module_name, _, qualname = str(json.loads(meta_path.read_text())["loader"]).partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    loader = getattr(target, "load", None)
    if loader is None:
        raise MlsdError(f"{module_name}:{qualname} has no load(directory)")
    return loader(directory)


CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Lineage:
    """Where a model came from: the exact training data, the feature definitions and the code."""

    data_fingerprint: str
    feature_views: Mapping[str, int | str]  # a view's version, or its lineage version ("v1+encoder@digest")
    code_revision: str

    def tags(self) -> dict[str, str]:
        views = ",".join(f"{name}:{version}" if isinstance(version, str) else f"{name}:v{version}"
                         for name, version in sorted(self.feature_views.items()))
        return {"mlsd.data_fingerprint": self.data_fingerprint, "mlsd.feature_views": views,
                "mlsd.code_revision": self.code_revision}


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as ``mlsd models`` lists it: what it is, how it scored, where it points."""

    version: str
    kind: str  # the run's name: the model family or variant
    created_ms: int
    aliases: tuple[str, ...]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        """What a person reads about the version: kind, aliases, when, the guard's verdict, lineage."""
        return {"version": self.version, "kind": self.kind, "aliases": list(self.aliases),
                "created": utc_text(self.created_ms / 1e3), "guard": self.tags.get(GUARD_TAG, ""),
                "lineage": {"data": self.tags.get("mlsd.data_fingerprint", ""),
                            "features": self.tags.get("mlsd.feature_views", ""),
                            "code": self.tags.get("mlsd.code_revision", "")}}

    def interval(self, metric: str) -> tuple[float, float] | None:
        """The 95% interval logged beside ``metric`` (``METRIC_ci_low`` / ``METRIC_ci_high``), if any."""
        low, high = self.metrics.get(f"{metric}_ci_low"), self.metrics.get(f"{metric}_ci_high")
        return None if low is None or high is None else (low, high)


HISTORY_TAG = "mlsd.champion_history"  # a registered-model tag: the champion's versions, oldest first
GUARD_TAG = "mlsd.promotion_guard"  # a version tag: "passed", or why automatic promotion refused it
_HISTORY_KEPT = 50


def code_revision() -> str:
    """The git commit of the working tree (with ``-dirty`` if it has changes), else the package version."""
    from mlsd import __version__

    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"mlsd {__version__}"


class ModelRegistry:
    """Registers model versions in MLflow and loads them back by alias or version."""

    def __init__(self, home: str | os.PathLike[str] | None = None, tracking_uri: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        logging.getLogger("alembic").setLevel(logging.WARNING)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.home = Path(home) if home is not None else home_dir()
        self.home.mkdir(parents=True, exist_ok=True)
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"
        self.tracking_uri = uri
        self.artifact_root = (self.home / "mlartifacts").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self._cache = self.home / "model-cache"

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = None if self.tracking_uri.startswith(("http", "databricks")) else f"{self.artifact_root}/{name}"
        return str(self.client.create_experiment(name, artifact_location=location))

    def register(self, name: str, pipeline: Savable, *, params: Mapping[str, Any],
                 metrics: Mapping[str, float], lineage: Lineage, experiment: str = "mlsd",
                 run_name: str | None = None, artifacts: Sequence[Path] = ()) -> RegisteredVersion:
        """Log a run (params, metrics, the pipeline directory) and create a model version from it."""
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        experiment_id = self._experiment(experiment)
        run = self.client.create_run(experiment_id, run_name=run_name, tags=lineage.tags())
        run_id = run.info.run_id
        try:
            stamp = int(run.info.start_time)
            self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                                  metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()
                                           if v == v and abs(float(v)) != float("inf")])
            with tempfile.TemporaryDirectory() as scratch:
                pipeline.save(Path(scratch) / "model")
                _write_kind(pipeline, Path(scratch) / "model")
                from mlsd.registry.pyfunc import write_mlmodel  # here: pyfunc imports this module

                write_mlmodel(Path(scratch) / "model", pipeline, run_id)
                self.client.log_artifacts(run_id, str(Path(scratch) / "model"), "model")
            for path in artifacts:
                self.client.log_artifact(run_id, str(path))
            self.client.set_terminated(run_id)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        source = f"{run.info.artifact_uri}/model"
        version = self.client.create_model_version(name, source, run_id=run_id, tags=lineage.tags())
        return RegisteredVersion(name, str(version.version), run_id, lineage.tags())

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``; a new champion is appended to the champion history (for rollback)."""
        self.client.set_registered_model_alias(name, alias, version)
        if alias == CHAMPION:
            history = self.champion_history(name)
            if not history or history[-1] != str(version):
                self._set_history(name, [*history, str(version)])

    def champion_history(self, name: str) -> list[str]:
        """The versions that were champion, oldest first (the last is the champion now)."""
        tags = self.client.get_registered_model(name).tags
        return [str(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]

    def _set_history(self, name: str, history: Sequence[str]) -> None:
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(list(history)[-_HISTORY_KEPT:]))

    def rollback(self, name: str) -> tuple[str, str]:
        """Move ``champion`` back to the previous champion; returns (from, to). :class:`MlsdError` if none."""
        current = self.version_for(name, CHAMPION)
        history = self.champion_history(name)
        while history and history[-1] == current:
            history.pop()
        if not history:
            raise MlsdError(f"model {name!r}: no previous champion to roll back to (champion is v{current})")
        previous = history[-1]
        self.client.set_registered_model_alias(name, CHAMPION, previous)
        self._set_history(name, history)
        return current, previous

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(name, version, key, value)

    def model_names(self) -> list[str]:
        """Every registered model's name."""
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, newest first, with its run's name and metrics and its aliases."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = dict(self.client.get_registered_model(name).aliases)
        except MlflowException as exc:
            raise MlsdError(f"no registered model {name!r} in {self.tracking_uri} (train it first: mlsd run)") \
                from exc
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        found = []
        for mv in self.client.search_model_versions(f"name = '{name}'"):
            run = self.client.get_run(str(mv.run_id))
            found.append(VersionInfo(str(mv.version), run.info.run_name or "", int(mv.creation_timestamp),
                                     tuple(sorted(by_version.get(str(mv.version), []))),
                                     dict(run.data.metrics), dict(mv.tags)))
        return sorted(found, key=lambda v: -int(v.version))

    def version_for(self, name: str, alias: str) -> str:
        """The version an alias points at; raises :class:`MlsdError` when there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            raise MlsdError(f"model {name!r} has no version with alias {alias!r} (train it first: mlsd run)") \
                from exc

    def describe(self, name: str, version: str) -> RegisteredVersion:
        mv = self.client.get_model_version(name, version)
        return RegisteredVersion(name, str(mv.version), str(mv.run_id), dict(mv.tags))

    def artifact_json(self, name: str, version: str, path: str) -> Any:
        """A JSON artefact logged with a version's run (e.g. its monitoring ``profile.json``)."""
        run_id = self.client.get_model_version(name, version).run_id
        with tempfile.TemporaryDirectory() as scratch:
            return json.loads(Path(self.client.download_artifacts(str(run_id), path, scratch)).read_text())

    def load(self, name: str, *, alias: str | None = None, version: str | None = None) -> tuple[Any, str]:
        """Download (once, cached by version) and load a model of any kind; returns it with its version."""
        return self.load_with(load_model, name, alias=alias, version=version)

    def load_with(self, loader: Callable[[Path], T], name: str, *, alias: str | None = None,
                  version: str | None = None) -> tuple[T, str]:
        """Like :meth:`load` for any saved model kind: ``loader`` reads the downloaded directory."""
        if version is None:
            version = self.version_for(name, alias or CHAMPION)
        target = self._cache / name / str(version)
        if not target.exists():  # a version appears by one rename, so an existing directory is complete
            mv = self.client.get_model_version(name, version)
            staging = Path(tempfile.mkdtemp(dir=self._cache.parent if self._cache.parent.exists() else None))
            try:
                local = self.client.download_artifacts(str(mv.run_id), "model", str(staging))
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(local, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return loader(target), str(version)
