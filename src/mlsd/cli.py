"""The ``mlsd`` command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from mlsd.core.errors import MlsdError
from mlsd.core.paths import home_dir
from mlsd.system import Option, Workspace, system_names


def _walkthrough(args: argparse.Namespace) -> int:
    from mlsd.systems.ads.walkthrough import Walkthrough

    Walkthrough(home=Path(args.home or home_dir() / "walkthrough"), data=args.data,
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
    from mlsd.system import RunConfig, load_system, option_values

    system = load_system(args.system)
    ws = _workspace(args)
    results = system.build(ws, RunConfig(data=args.data, progress=not args.quiet,
                                         options=option_values(system, "run", vars(args))))
    print(system.format_results(results))
    if args.json:
        summarize = getattr(system, "json_summary", None)
        atomic_write_json(Path(args.json), summarize(results) if summarize else results)
        print(f"metrics: {args.json}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mlsd.lifecycle.serve import edge_limits, serve
    from mlsd.system import ServeConfig, load_system, option_values

    system = load_system(args.system)
    # a system may say what window its traffic needs (optional attribute ``window_s``)
    window_s = args.window_s if args.window_s is not None else float(getattr(system, "window_s", 3600.0))
    config = ServeConfig(ab_share=args.ab_share, window_s=window_s, label_delay_s=args.label_delay_s,
                         drift_psi=args.drift_psi, drift_js=args.drift_js, drift_p=args.drift_p,
                         options=option_values(system, "serve", vars(args)))
    home = _workspace(args).home
    limits = edge_limits(home, args.host, token=not args.no_token, token_all=args.token_all,
                         max_in_flight=args.max_in_flight, queue_budget_s=args.queue_budget_ms / 1e3,
                         max_body_bytes=args.max_body_bytes, body_timeout_s=args.body_timeout_s)
    serve(args.system, home=home, host=args.host, port=args.port, workers=args.workers, config=config,
          limits=limits, max_connections=args.max_connections)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlsd.lifecycle import run_demo
    from mlsd.system import RunConfig, load_system, option_values

    # A terminated demo still stops the server it started (the `with` blocks unwind on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    system = load_system(args.system)
    config = RunConfig(data=args.data, progress=not args.quiet, options=option_values(system, "run", vars(args)))
    run_demo(system, Path(args.out or f"runs/demo{'' if args.system == 'ads' else '-' + args.system}"), config,
             speed=args.speed)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from mlsd.lifecycle import replay_running
    from mlsd.system import ReplayConfig, load_system, option_values

    system = load_system(args.system)
    config = ReplayConfig(speed=args.speed, label_delay_s=args.label_delay_s, limit=args.limit,
                          drift_at_hours=args.drift_at_hours, options=option_values(system, "replay", vars(args)))
    print(json.dumps(replay_running(system, _workspace(args), args.host, args.port, config), indent=1))
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlsd.reporting import write_design_report
    from mlsd.system import load_system

    ws = _workspace(args)
    print(f"report: {write_design_report(load_system(args.system), ws, Path(args.out) if args.out else None)}")
    return 0


def _ope(args: argparse.Namespace) -> int:
    from mlsd.systems.bandit.open_bandit import run_ope

    results = run_ope(args.data, resamples=args.resamples)
    for campaign, r in results.items():
        errors = r["relative_error"]
        print(f"{campaign:6s} truth {r['truth']:.5f}  ips {r['ips']:.5f}  snips {r['snips']:.5f}  dr {r['dr']:.5f}  "
              f"relative error ips {errors['ips']:.1%} snips {errors['snips']:.1%} dr {errors['dr']:.1%}")
    if args.json:
        from mlsd.core.atomic import atomic_write_json

        atomic_write_json(Path(args.json), results)
        print(f"estimates: {args.json}")
    return 0


SYSTEM_VERBS = ("run", "serve", "demo", "replay", "report")


def build_parser(system_options: Sequence[Option] = ()) -> argparse.ArgumentParser:
    """The parser; ``system_options``: the named system's own options, added to the verbs they are for."""
    parser = argparse.ArgumentParser(prog="mlsd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    walk = sub.add_parser("walkthrough", help="feature platform end to end on ad clicks")
    walk.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; generated clicks without one)")
    walk.add_argument("--home", help="output directory (default: $MLSD_HOME/walkthrough)")
    walk.add_argument("--synthetic-rows", type=int, default=200_000)
    walk.add_argument("--quiet", action="store_true")
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
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(run=_run)
    serve = sub.add_parser("serve", help="serve a reference system's champion model over HTTP")
    serve.add_argument("system", choices=names)
    serve.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
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
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(run=_demo)
    rep = sub.add_parser("replay", help="replay the held-out traffic through a running `mlsd serve` service")
    rep.add_argument("system", choices=names)
    rep.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    rep.add_argument("--host", default="127.0.0.1")
    rep.add_argument("--port", type=int, default=8000)
    rep.add_argument("--speed", type=float, help="event seconds per wall second (default: as fast as served)")
    rep.add_argument("--label-delay-s", type=float, default=600.0, help="labels are posted this late (event time)")
    rep.add_argument("--drift-at-hours", type=float, help="inject a drift this many hours into the period")
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
    data.add_argument("--data")
    data.set_defaults(run=_datasets)
    verbs = {"run": run, "serve": serve, "demo": demo, "replay": rep, "report": report}
    for option in system_options:
        for verb in option.verbs:
            # demo builds the system first, so it takes the run options too
            for parser_of in [verbs[verb]] + ([demo] if verb == "run" else []):
                parser_of.add_argument(option.flag, dest=option.name, default=option.default, type=option.type,
                                       choices=option.choices, help=f"{option.help} (this system only)")
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
