"""The verbs that read or change a trained system (never create a home): models, promote, rollback,
plan, status, features, materialize; their parsers."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlsd.cli.common import _workspace


def _models(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.manage import format_models, list_models
    from mlsd.system import load_system

    models = list_models(load_system(args.system), _workspace(args))
    print(json.dumps(models, indent=1) if args.json else format_models(models))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.manage import promote_version
    from mlsd.system import load_system

    print(promote_version(load_system(args.system), _workspace(args), args.version, args.alias, args.model))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.manage import rollback
    from mlsd.system import load_system

    print(rollback(load_system(args.system), _workspace(args), args.model))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.plan import format_plan, plan
    from mlsd.system import load_system

    result = plan(load_system(args.system), _workspace(args), args.qps, args.entities, args.requests)
    print(json.dumps(result, indent=1) if args.json else format_plan(result))
    return 0


def _status(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.status import format_status, system_status
    from mlsd.system import load_system

    state = system_status(load_system(args.system), _workspace(args))
    print(json.dumps(state, indent=1) if args.json else format_status(state))
    return 0


def _features(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.status import feature_views, format_views
    from mlsd.system import load_system

    views = feature_views(load_system(args.system), _workspace(args))
    print(json.dumps(views, indent=1) if args.json else format_views(views))
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.status import materialize
    from mlsd.system import load_system

    done = materialize(load_system(args.system), _workspace(args), args.until, args.views)
    for view, rows in done["written"].items():
        print(f"{view}: {rows:,} entity rows written")
    print(f"materialized until {done['until']}")
    return 0


def _lifecycle_parsers(sub: Any, names: list[str]) -> None:
    """The verbs that read or change a trained system's registry and stores (never create a home)."""
    def system_parser(name: str, text: str) -> argparse.ArgumentParser:
        verb: argparse.ArgumentParser = sub.add_parser(name, help=text)
        verb.add_argument("system", choices=names)
        verb.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
        return verb

    models = system_parser("models", "registered versions: kind, key metrics, aliases, guard, lineage")
    models.add_argument("--json", action="store_true", help="print JSON (every metric)")
    models.set_defaults(run=_models)
    promote = system_parser("promote", "point champion (or --as challenger) at a version by hand")
    promote.add_argument("version", help="the version number (as `mlsd models` lists it)")
    promote.add_argument("--as", dest="alias", default="champion", choices=["champion", "challenger"])
    promote.add_argument("--model", help="registered model name (default: the one the service follows)")
    promote.set_defaults(run=_promote)
    roll = system_parser("rollback", "move champion back to the previous champion")
    roll.add_argument("--model", help="registered model name (default: the one the service follows)")
    roll.set_defaults(run=_rollback)
    status = system_parser("status", "trained? champion, serving where, the monitor's last window and alerts")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_status)
    planner = system_parser("plan", "cores, replicas, Redis memory and log storage for a load, from measurements")
    planner.add_argument("--qps", type=float, required=True, help="requests per second to plan for")
    planner.add_argument("--entities", type=int, required=True, help="entity rows per feature view")
    planner.add_argument("--requests", type=int, default=300, help="replay requests to measure (default 300)")
    planner.add_argument("--json", action="store_true", help="print JSON")
    planner.set_defaults(run=_plan)
    features = system_parser("features", "feature views: versions, online rows, freshness")
    features.add_argument("--json", action="store_true", help="print JSON")
    features.set_defaults(run=_features)
    mat = system_parser("materialize", "write the views' latest values to the online store (incremental)")
    mat.add_argument("--until", help="end time, ISO 8601 (default: the newest source event)")
    mat.add_argument("--views", nargs="+", help="only these views (default: every materializable view)")
    mat.set_defaults(run=_materialize)
