"""The ``mlsd`` command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.core.paths import home_dir
from mlsd.system import Option, System, Workspace, system_names


def _walkthrough(args: argparse.Namespace) -> int:
    from mlsd.systems.ads.walkthrough import Walkthrough

    home = Path(args.home or home_dir() / "walkthrough")
    _check_data(("talkingdata",), args.data, "mlsd walkthrough")
    _logs(args, home, create=True)
    Walkthrough(home=home, data=args.data,
                progress=not args.quiet, synthetic_rows=args.synthetic_rows).run()
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


def _workspace(args: argparse.Namespace) -> Workspace:
    return Workspace(Path(args.home or home_dir() / args.system))


def _check_data(system_datasets: Sequence[str], data: str | None, command: str) -> None:
    """A data directory given (``--data`` or ``$MLSD_DATA_DIR``) must hold every dataset, verified; else exit 2.

    Without one, say on the first line that the run uses generated data (where the system has it).
    """
    from mlsd.core.errors import DataNotFoundError
    from mlsd.core.paths import data_dir
    from mlsd.datasets import DATASETS, locate

    root = data_dir(data)
    if root is None:
        print(f"{command}: no data directory (--data DIR or $MLSD_DATA_DIR): generated data where the system has "
              "it, else an error", flush=True)
        return
    if not root.is_dir():
        raise DataNotFoundError(f"data directory {root} does not exist")
    problems = []
    for name in system_datasets:
        if name in DATASETS:
            try:
                locate(name, root)
            except DataNotFoundError as exc:
                problems.append(str(exc))
    if problems:
        raise DataNotFoundError(f"{root} is incomplete: " + " | ".join(problems))


def _logs(args: argparse.Namespace, home: Path | None, create: bool = False, trains: bool = True) -> None:
    """Console and log file for this command; ``trains``: it fits or serves models (route LightGBM's log)."""
    from mlsd.core.progress import set_enabled
    from mlsd.lifecycle.logs import configure

    set_enabled(not getattr(args, "quiet", False))
    if home is not None and create:
        home.mkdir(parents=True, exist_ok=True)
    configure(home, verbose=getattr(args, "verbose", False), quiet=getattr(args, "quiet", False),
              libraries=trains)


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
    from mlsd.systems.bandit.open_bandit import format_estimates, run_ope

    results = run_ope(args.data, resamples=args.resamples)
    print(format_estimates(results))
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


SYSTEM_VERBS = ("run", "serve", "demo", "replay", "report")


def build_parser(system_options: Sequence[Option] = ()) -> argparse.ArgumentParser:
    """The parser; ``system_options``: the named system's own options, added to the verbs they are for."""
    from mlsd import __version__

    parser = argparse.ArgumentParser(prog="mlsd", description=__doc__, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mlsd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        # every command's --help shows its defaults
        return sub_parser(name, formatter_class=_DefaultsFormatter, **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    walk = sub.add_parser("walkthrough", help="feature platform end to end on ad clicks")
    walk.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; generated clicks without one)")
    walk.add_argument("--home", help="output directory (default: $MLSD_HOME/walkthrough)")
    walk.add_argument("--synthetic-rows", type=int, default=200_000,
                      help="generated clicks when no data directory is given")
    walk.add_argument("--quiet", action="store_true", help="only warnings, errors and results")
    walk.set_defaults(run=_walkthrough)
    ingest = sub.add_parser("ingest", help="validate and append a CSV/Parquet file to an event log")
    ingest.add_argument("file")
    ingest.add_argument("--log", required=True, help="event log directory")
    ingest.add_argument("--schema", default="talkingdata", choices=["talkingdata"])
    ingest.add_argument("--quiet", action="store_true")
    ingest.set_defaults(run=_ingest)
    systems = sub.add_parser("systems", help="list every registered system: task, datasets found, trained, champion")
    systems.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR)")
    systems.add_argument("--json", action="store_true", help="print JSON")
    systems.set_defaults(run=_systems)
    names = system_names()
    run = sub.add_parser("run", help="ingest -> features -> train -> register -> evaluate a reference system")
    run.add_argument("system", choices=names)
    run.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; generated data without one)")
    run.add_argument("--home", help="output directory (default: $MLSD_HOME/SYSTEM)")
    run.add_argument("--json", help="write the metrics to this path")
    run.add_argument("--quiet", action="store_true", help="only warnings, errors and results")
    run.add_argument("--engine", choices=["embedded", "ray"], default="embedded",
                     help="ray: training frames and PyTorch fits on Ray (pip install 'mlsd[scale]'; for the "
                          "systems that declare it: ads)")
    run.add_argument("--train-workers", type=int, default=2, help="Ray Train workers (--engine ray; default 2)")
    run.set_defaults(run=_run)
    serve = sub.add_parser("serve", help="serve a reference system's champion model over HTTP")
    serve.add_argument("system", choices=names)
    serve.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=int, default=8000, help="port to bind")
    serve.add_argument("--max-in-flight", type=int, default=64,
                       help="scoring queue length per worker; beyond it: 503 + Retry-After (default 64)")
    serve.add_argument("--queue-budget-ms", type=float, default=25.0,
                       help="shed a request whose expected wait in the scoring queue exceeds this (default 25)")
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger bodies: 413 (default 1 MiB)")
    serve.add_argument("--body-timeout-s", type=float, default=10.0,
                       help="a body not received within this: 408 (default 10)")
    serve.add_argument("--max-connections", type=int, default=2048,
                       help="open connections per worker; beyond them: 503 (default 2048)")
    serve.add_argument("--no-token", action="store_true",
                       help="writes (labels, events) without the home's token; loopback addresses only")
    serve.add_argument("--token-all", action="store_true", help="the scoring route needs the token too")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--engine", choices=["embedded", "ray"], default="embedded",
                       help="embedded: uvicorn here; ray: a Ray Serve deployment (pip install 'mlsd[scale]')")
    serve.add_argument("--replicas", type=int, help="Ray Serve replicas (--engine ray; default 1)")
    serve.add_argument("--ab-share", type=float, default=0.0,
                       help="A/B test: share of users (hashed) served by the challenger (default 0: off)")
    serve.add_argument("--window-s", type=float, default=None,
                       help="monitoring window, event-time seconds (default: the system's, else 3600)")
    serve.add_argument("--label-delay-s", type=float, default=600.0,
                       help="how long the monitor waits for a request's labels before counting them as 0")
    serve.add_argument("--drift-psi", type=float, default=0.25, help="alert at this PSI (test permitting)")
    serve.add_argument("--drift-js", type=float, default=0.18, help="alert at this JS distance")
    serve.add_argument("--drift-p", type=float, default=0.001, help="significance level of the KS / chi-squared test")
    serve.set_defaults(run=_serve)
    demo = sub.add_parser("demo", help="a system end to end: train, serve, replay with A/B, monitor, report")
    demo.add_argument("system", nargs="?", default="ads", choices=names, help="default: ads")
    demo.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; the generated marketplace without one)")
    demo.add_argument("--out", help="output directory (default: runs/demo for ads, runs/demo-SYSTEM otherwise)")
    demo.add_argument("--speed", type=float, help="replay speed, event seconds per second (default: as fast as served)")
    demo.add_argument("--drift-at-hours", type=float,
                      help="ads: inject the drift this many hours into the replayed period (default: half way)")
    demo.add_argument("--no-drift", action="store_true",
                      help="ads: replay the held-out traffic as it is, no injected drift (a clean replay)")
    demo.add_argument("--quiet", action="store_true", help="only warnings, errors and results")
    demo.set_defaults(run=_demo)
    rep = sub.add_parser("replay", help="replay the held-out traffic through a running `mlsd serve` service")
    rep.add_argument("system", choices=names)
    rep.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    rep.add_argument("--host", default="127.0.0.1", help="the service's address")
    rep.add_argument("--port", type=int, default=8000, help="the service's port")
    rep.add_argument("--speed", type=float, help="event seconds per wall second (default: as fast as served)")
    rep.add_argument("--label-delay-s", type=float, default=600.0, help="labels are posted this late (event time)")
    rep.add_argument("--drift-at-hours", type=float,
                     help="inject a drift this many hours into the period (default: none, the traffic as it is)")
    rep.add_argument("--limit", type=int, help="replay at most this many requests")
    rep.set_defaults(run=_replay)
    report = sub.add_parser("report", help="write the seven-step HTML design report of a reference system")
    report.add_argument("system", choices=names)
    report.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    report.add_argument("--out", help="output file (default: HOME/report.html)")
    report.set_defaults(run=_report)
    ope = sub.add_parser("ope", help="off-policy estimates of the BTS policy's click rate on the Open Bandit Dataset")
    ope.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR)")
    ope.add_argument("--json", help="write the per-campaign estimates here")
    ope.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    ope.set_defaults(run=_ope)
    data = sub.add_parser("datasets", help="verify the datasets under the data directory")
    data.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR)")
    data.set_defaults(run=_datasets)
    _lifecycle_parsers(sub, names)
    for command in (walk, run, demo, serve, rep, report):
        if not any("--quiet" in a.option_strings for a in command._actions):
            command.add_argument("--quiet", action="store_true", help="only warnings, errors and results")
        command.add_argument("--verbose", action="store_true",
                             help="also INFO lines and library warnings on the console (all in HOME/logs/mlsd.log)")
    verbs = {"run": run, "serve": serve, "demo": demo, "replay": rep, "report": report}
    for option in system_options:
        for verb in option.verbs:
            # demo builds the system first, so it takes the run options too
            for parser_of in [verbs[verb]] + ([demo] if verb == "run" else []):
                if option.type is bool:  # a switch: present or not
                    parser_of.add_argument(option.flag, dest=option.name, action="store_true",
                                           help=f"{option.help} (this system only)")
                    continue
                parser_of.add_argument(option.flag, dest=option.name, default=option.default, type=option.type,
                                       choices=option.choices, help=f"{option.help} (this system only)")
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already states it or there is none to state."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


_EPILOG = """model lifecycle: mlsd models|promote|rollback|status SYSTEM; features: mlsd features|materialize SYSTEM.
Library warnings and INFO lines go to HOME/logs/mlsd.log (--verbose shows them); --quiet keeps results only."""


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


def _system_options(argv: Sequence[str]) -> tuple[Option, ...]:
    """The options of the system a verb names (``mlsd run recs ...``), loading only that system."""
    from mlsd.system import load_system

    words = [a for a in argv if not a.startswith("-")]
    if len(words) >= 2 and words[0] in SYSTEM_VERBS and words[1] in system_names():
        return load_system(words[1]).options
    return ()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_system_options(argv)).parse_args(argv)
    except MlsdError as exc:
        print(f"mlsd: error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except MlsdError as exc:
        print(f"mlsd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlsd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
