"""The verbs that make and run systems: walkthrough, ingest, datasets, systems, run, serve, demo, replay,
report, ope."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from mlsd.cli.common import _check_data, _logs, _workspace
from mlsd.core.errors import MlsdError
from mlsd.core.paths import home_dir
from mlsd.system import System, Workspace, load_command, system_names


def _walkthrough(args: argparse.Namespace) -> int:
    home = Path(args.home or home_dir() / "walkthrough")
    _check_data(("talkingdata",), args.data, "mlsd walkthrough")
    _logs(args, home, create=True)
    load_command("walkthrough")(home, args.data, progress=not args.quiet, synthetic_rows=args.synthetic_rows)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from mlsd.datasets import TALKINGDATA_SCHEMA
    from mlsd.events import EventLog, Ingestor

    schemas = {"talkingdata": TALKINGDATA_SCHEMA}
    with EventLog(args.log, schemas[args.schema]) as log:
        report = Ingestor(log).ingest_file(args.file, progress=not args.quiet)
    print(json.dumps({"accepted": report.accepted, "duplicates": report.duplicates, "rejected": report.rejected,
                      "reject_samples": report.reject_samples}, indent=1))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from mlsd.datasets import DATASETS, locate

    status = 0
    for name in DATASETS:
        try:
            files = locate(name, args.data)
            print(f"{name}: ok ({len(files)} files verified)")
        except MlsdError as exc:
            print(f"{name}: {exc}")
            status = 1
    return status


def _systems(args: argparse.Namespace) -> int:
    from mlsd.system import load_system, system_state

    rows = [system_state(load_system(name), Workspace(home_dir() / name), args.data) for name in system_names()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'system':8s} {'task':10s} {'trained':8s} {'champion':9s} datasets found")
    for r in rows:
        found = ", ".join(r["datasets_found"]) or "none (generated data where the system has it)"
        print(f"{r['system']:8s} {r['task']:10s} {'yes' if r['trained'] else 'no':8s} {r['champion'] or '-':9s} "
              f"{found}   # {r['summary']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mlsd.core.atomic import atomic_write_json
    from mlsd.system import RunConfig, load_system, option_values, system_names

    system = load_system(args.system)
    if args.engine not in getattr(system, "engines", ("embedded",)):
        raise MlsdError(f"{system.name} builds on the embedded engine only (--engine ray: "
                        f"{', '.join(n for n in system_names() if 'ray' in getattr(load_system(n), 'engines', ()))})")
    ws = _workspace(args)
    _check_data(system.datasets, args.data, f"mlsd run {system.name}")
    _logs(args, ws.home, create=True)
    started = time.perf_counter()
    results = system.build(ws, RunConfig(data=args.data, progress=not args.quiet, engine=args.engine,
                                         workers=args.train_workers,
                                         options=option_values(system, "run", vars(args))))
    print(system.format_results(results))
    _say_champion(system, ws, time.perf_counter() - started)
    if args.json:
        summarize = getattr(system, "json_summary", None)
        atomic_write_json(Path(args.json), summarize(results) if summarize else results)
        print(f"metrics: {args.json}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.manage import require_trained
    from mlsd.lifecycle.serve import edge_limits, serve
    from mlsd.system import ServeConfig, load_system, option_values

    if args.replicas is not None and args.engine != "ray":
        raise MlsdError("--replicas is for --engine ray (the embedded server takes --workers)")
    if args.engine == "ray" and args.workers != 1:
        raise MlsdError("--workers is for the embedded server (Ray Serve takes --replicas)")
    system = load_system(args.system)
    require_trained(_workspace(args), system)  # before the token: a wrong --home creates nothing
    _logs(args, _workspace(args).home)
    # a system may say what window its traffic needs (optional attribute ``window_s``)
    window_s = args.window_s if args.window_s is not None else float(getattr(system, "window_s", 3600.0))
    config = ServeConfig(ab_share=args.ab_share, window_s=window_s, label_delay_s=args.label_delay_s,
                         drift_psi=args.drift_psi, drift_js=args.drift_js, drift_p=args.drift_p,
                         options=option_values(system, "serve", vars(args)))
    home = _workspace(args).home
    limits = edge_limits(home, args.host, token=not args.no_token, token_all=args.token_all,
                         max_in_flight=args.max_in_flight, queue_budget_s=args.queue_budget_ms / 1e3,
                         max_body_bytes=args.max_body_bytes, body_timeout_s=args.body_timeout_s)
    workers = (args.replicas or 1) if args.engine == "ray" else args.workers
    serve(args.system, home=home, host=args.host, port=args.port, workers=workers, config=config,
          limits=limits, max_connections=args.max_connections, engine=args.engine)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlsd.lifecycle import run_demo
    from mlsd.system import RunConfig, load_system, option_values

    # A terminated demo still stops the server it started (the `with` blocks unwind on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    system = load_system(args.system)
    _check_data(system.datasets, args.data, f"mlsd demo {system.name}")
    out = Path(args.out or f"runs/demo{'' if args.system == 'ads' else '-' + args.system}")
    _logs(args, out, create=True)
    config = RunConfig(data=args.data, progress=not args.quiet, options=option_values(system, "run", vars(args)))
    run_demo(system, out, config, speed=args.speed, drift=not args.no_drift, drift_at_hours=args.drift_at_hours)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from mlsd.lifecycle import replay_running
    from mlsd.lifecycle.manage import require_trained
    from mlsd.lifecycle.serve import probe
    from mlsd.system import ReplayConfig, load_system, option_values

    system = load_system(args.system)
    require_trained(_workspace(args), system)
    if probe(args.host, args.port) is None:
        raise MlsdError(f"no service answers on {args.host}:{args.port}: start it first (mlsd serve {system.name})")
    _logs(args, _workspace(args).home, trains=False)
    config = ReplayConfig(speed=args.speed, label_delay_s=args.label_delay_s, limit=args.limit,
                          drift_at_hours=args.drift_at_hours, options=option_values(system, "replay", vars(args)))
    print(json.dumps(replay_running(system, _workspace(args), args.host, args.port, config), indent=1))
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.manage import require_trained
    from mlsd.reporting import write_design_report
    from mlsd.system import load_system

    ws, system = _workspace(args), load_system(args.system)
    require_trained(ws, system)
    _logs(args, ws.home, trains=False)
    print(f"report: {write_design_report(system, ws, Path(args.out) if args.out else None)}")
    return 0


def _ope(args: argparse.Namespace) -> int:
    results, table = load_command("ope")(args.data, resamples=args.resamples)
    print(table)
    if args.json:
        from mlsd.core.atomic import atomic_write_json

        atomic_write_json(Path(args.json), results)
        print(f"estimates: {args.json}")
    return 0


def _say_champion(system: System, ws: Workspace, seconds: float) -> None:
    """The run's last line: the champion it left for ``mlsd serve``, what the guard refused, the time."""
    from mlsd.lifecycle.manage import served_model
    from mlsd.registry.mlflow_registry import GUARD_TAG

    name = served_model(system, ws)
    versions = ws.registry.versions(name)
    champion = next((v for v in versions if "champion" in v.aliases), None)
    refused = [f"v{v.version} ({v.tags[GUARD_TAG]})" for v in versions
               if v.tags.get(GUARD_TAG, "passed") != "passed"]
    chosen = (f"{name} v{champion.version} ({champion.kind}), chosen on validation" if champion
              else f"none: no version of {name} passed the promotion guard (mlsd promote {system.name} VERSION)")
    print(f"champion: {chosen}; {len(versions)} version(s) registered"
          + (f"; refused by the guard: {'; '.join(refused)}" if refused else "")
          + f". Done in {seconds:,.0f} s (mlsd models {system.name} lists them)")
