"""The ``mlsd`` command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from mlsd.core.errors import MlsdError
from mlsd.core.paths import home_dir


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


def _run(args: argparse.Namespace) -> int:
    from mlsd.core.atomic import atomic_write_json

    if args.system == "recs":
        from mlsd.systems.recs.cli import run_recs_command

        return run_recs_command(Path(args.home or home_dir() / args.system), args.data, args.json, args.dataset,
                                quiet=args.quiet)
    from mlsd.systems.ads.run import AdsRun

    results = AdsRun(home=Path(args.home or home_dir() / args.system), data=args.data, progress=not args.quiet,
                     models=args.models.split(",") if args.models else AdsRun.models).run()
    if args.json:
        atomic_write_json(Path(args.json), results)
        print(f"metrics: {args.json}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mlsd.serving.server import serve

    serve(args.system, home=Path(args.home or home_dir() / args.system), host=args.host, port=args.port,
          max_in_flight=args.max_in_flight, workers=args.workers,
          options={"ab_share": args.ab_share, "window_s": args.window_s, "label_delay_s": args.label_delay_s,
                   "psi": args.drift_psi, "js": args.drift_js, "p_value": args.drift_p})
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlsd.systems.ads.demo import AdsDemo

    # A terminated demo still stops the server it started (the `with` blocks unwind on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    AdsDemo(out=Path(args.out), data=args.data, speed=args.speed, progress=not args.quiet).run()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from mlsd.systems.ads.demo import replay_running

    result = replay_running(Path(args.home or home_dir() / args.system), args.host, args.port, speed=args.speed,
                            label_delay_s=args.label_delay_s, drift_at_hours=args.drift_at_hours)
    print(json.dumps(result, indent=1))
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlsd.systems.ads.report import write_report

    home = Path(args.home or home_dir() / args.system)
    if args.system == "recs":
        from mlsd.systems.recs.report import write_recs_report

        write_report = write_recs_report
    print(f"report: {write_report(home, Path(args.out) if args.out else home / 'report.html')}")
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


def build_parser() -> argparse.ArgumentParser:
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
    run = sub.add_parser("run", help="ingest -> features -> train -> register -> evaluate a reference system")
    run.add_argument("system", choices=["ads", "recs"])
    run.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; generated data without one)")
    run.add_argument("--home", help="output directory (default: $MLSD_HOME/SYSTEM)")
    run.add_argument("--json", help="write {dataset: {model: metrics}} to this path")
    run.add_argument("--models", help="ads: comma-separated model kinds (default: all)")
    run.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "ml-1m-first-half"],
                     help="recs: the MovieLens release (default ml-100k)")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(run=_run)
    serve = sub.add_parser("serve", help="serve a reference system's champion model over HTTP")
    serve.add_argument("system", choices=["ads", "recs"])
    serve.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-in-flight", type=int, default=64, help="per worker; beyond it: 503 + Retry-After")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--ab-share", type=float, default=0.0,
                       help="A/B test: share of users (hashed ip) scored by the challenger (default 0: off)")
    serve.add_argument("--window-s", type=float, default=3600.0, help="monitoring window, event-time seconds")
    serve.add_argument("--label-delay-s", type=float, default=600.0,
                       help="how long the monitor waits for a request's label before counting it as 0")
    serve.add_argument("--drift-psi", type=float, default=0.25, help="alert at this PSI (test permitting)")
    serve.add_argument("--drift-js", type=float, default=0.18, help="alert at this JS distance")
    serve.add_argument("--drift-p", type=float, default=0.001, help="significance level of the KS / chi-squared test")
    serve.set_defaults(run=_serve)
    demo = sub.add_parser("demo", help="the ads system end to end: train, serve, replay with A/B, monitor, report")
    demo.add_argument("--data", help="data directory (default: $MLSD_DATA_DIR; the generated marketplace without one)")
    demo.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    demo.add_argument("--speed", type=float, help="replay speed, event seconds per second (default: as fast as served)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(run=_demo)
    rep = sub.add_parser("replay", help="replay the held-out traffic through a running `mlsd serve` service")
    rep.add_argument("system", choices=["ads"])
    rep.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    rep.add_argument("--host", default="127.0.0.1")
    rep.add_argument("--port", type=int, default=8000)
    rep.add_argument("--speed", type=float, help="event seconds per wall second (default: as fast as served)")
    rep.add_argument("--label-delay-s", type=float, default=600.0, help="labels are posted this late (event time)")
    rep.add_argument("--drift-at-hours", type=float, help="inject the drift this many hours into the period")
    rep.set_defaults(run=_replay)
    report = sub.add_parser("report", help="write the seven-step HTML design report of a reference system")
    report.add_argument("system", choices=["ads", "recs"])
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MlsdError as exc:
        print(f"mlsd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
