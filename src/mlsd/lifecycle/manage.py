"""The model and feature lifecycle from the command line: ``mlsd models|promote|rollback|status|features|materialize``.

Each reads a system's home and never creates one: a home that does not exist, or one with no
trained model, is a one-line :class:`MlsdError` (exit 2), so a typo in ``--home`` cannot leave an
empty workspace behind. Versions, aliases and the champion history live in MLflow (the registry),
so what these commands change is what ``mlflow`` and a running service see: a service follows its
alias within its poll interval (:data:`POLL_INTERVAL_S`).
"""

from __future__ import annotations

import os
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.registry import CHALLENGER, CHAMPION, ModelRegistry, VersionInfo
from mlsd.registry.mlflow_registry import GUARD_TAG
from mlsd.system import System, Workspace

POLL_INTERVAL_S = 10.0  # ModelHolder's default: how soon a running service follows an alias


def require_home(ws: Workspace, system: System) -> None:
    """:class:`MlsdError` unless ``ws.home`` exists (commands that read state never create it)."""
    if not ws.home.is_dir():
        raise MlsdError(f"no such home {ws.home}: nothing was built there (mlsd run {system.name} --home DIR "
                        "creates one)")


def require_trained(ws: Workspace, system: System) -> None:
    """:class:`MlsdError` unless the home holds a finished build (``run.json``) and its registry."""
    require_home(ws, system)
    if ws.run_state() is None:
        raise MlsdError(f"{system.name} is not trained in {ws.home}: run `mlsd run {system.name}` first")
    if not os.environ.get("MLFLOW_TRACKING_URI") and not (ws.home / "mlflow.db").exists():
        raise MlsdError(f"{ws.home} has no model registry (mlflow.db): run `mlsd run {system.name}` first")


def served_model(system: System, ws: Workspace) -> str:
    """The registered model the system's service follows (a system may pick it per home)."""
    pick = getattr(system, "served_model_name", None)
    return str(pick(ws)) if callable(pick) else system.model_name


def _registry(system: System, ws: Workspace) -> ModelRegistry:
    require_trained(ws, system)
    return ws.registry


_HEADLINE = ("auc", "ndcg", "mrr", "hr", "map", "recall", "ap", "logloss", "ne")  # most telling first


def _key_metrics(info: VersionInfo, per_period: int = 2) -> list[str]:
    """The headline validation and test metrics, each with its 95% interval when one was logged."""
    def rank(name: str) -> tuple[int, str]:
        stem = name.split("_", 1)[1] if "_" in name else name
        found = [i for i, h in enumerate(_HEADLINE) if stem == h or stem.startswith(h + "_")]
        return (found[0] if found else len(_HEADLINE), name)

    shown = []
    for period in ("valid", "test"):
        names = sorted((k for k in info.metrics if k.startswith(period + "_")
                        and not k.endswith(("_ci_low", "_ci_high"))), key=rank)
        for name in names[:per_period]:
            value, interval = info.metrics[name], info.interval(name)
            shown.append(f"{name} {value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""))
    return shown


def list_models(system: System, ws: Workspace) -> list[dict[str, Any]]:
    """Every registered model of the system's home, each with its versions (newest first)."""
    registry = _registry(system, ws)
    served = served_model(system, ws)
    names = sorted(registry.model_names(), key=lambda n: (n != served, n))
    return [{"model": name, "served": name == served, "champion_history": registry.champion_history(name),
             "versions": [{**v.as_dict(), "metrics": dict(v.metrics), "key_metrics": _key_metrics(v)}
                          for v in registry.versions(name)]}
            for name in names]


def format_models(models: list[dict[str, Any]]) -> str:
    lines = []
    for model in models:
        lines.append(f"{model['model']}{'  (served)' if model['served'] else ''}")
        for v in model["versions"]:
            aliases = ",".join(v["aliases"]) or "-"
            guard = "" if v["guard"] in ("", "passed") else f"  REFUSED BY GUARD: {v['guard']}"
            lineage = v["lineage"]
            lines.append(f"  v{v['version']:<3s} {v['kind']:12s} {aliases:20s} {v['created']}  "
                         f"{'; '.join(v['key_metrics']) or 'no metrics logged'}{guard}")
            lines.append(f"       lineage: data {lineage['data'][:12] or '?'}, code {lineage['code'][:12] or '?'}, "
                         f"features {lineage['features'] or '-'}")
    return "\n".join(lines)


def _model_for(system: System, ws: Workspace, registry: ModelRegistry, model: str | None) -> str:
    name = model or served_model(system, ws)
    if name not in registry.model_names():
        raise MlsdError(f"no registered model {name!r} in {ws.home}; registered: "
                        f"{', '.join(registry.model_names()) or 'none'}")
    return name


def promote_version(system: System, ws: Workspace, version: str, alias: str = CHAMPION,
                    model: str | None = None) -> str:
    """Point ``alias`` of the served model (or ``model``) at ``version`` by hand; returns what to tell the user."""
    if alias not in (CHAMPION, CHALLENGER):
        raise MlsdError(f"--as must be {CHAMPION} or {CHALLENGER}, not {alias!r}")
    registry = _registry(system, ws)
    name = _model_for(system, ws, registry, model)
    known = {v.version: v for v in registry.versions(name)}
    version = version.removeprefix("v")
    if version not in known:
        raise MlsdError(f"{name} has no version {version}; versions: {', '.join(sorted(known, key=int))}")
    registry.set_alias(name, alias, version)
    guard = known[version].tags.get(GUARD_TAG, "")
    warning = f" (note: automatic promotion refused it: {guard})" if guard not in ("", "passed") else ""
    return (f"{name}: {alias} -> v{version} ({known[version].kind}){warning}; a running service follows within "
            f"its poll interval ({POLL_INTERVAL_S:.0f} s)")


def rollback(system: System, ws: Workspace, model: str | None = None) -> str:
    """Move the champion back to the previous champion; returns what to tell the user."""
    registry = _registry(system, ws)
    name = _model_for(system, ws, registry, model)
    before, after = registry.rollback(name)
    return (f"{name}: champion v{before} -> v{after} (the previous champion); a running service follows within "
            f"its poll interval ({POLL_INTERVAL_S:.0f} s)")
