"""The ``mlsd`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from mlsd.cli.build import (
    _datasets,
    _demo,
    _ingest,
    _ope,
    _replay,
    _report,
    _run,
    _serve,
    _systems,
    _walkthrough,
)
from mlsd.cli.operate import _lifecycle_parsers
from mlsd.core.errors import MlsdError
from mlsd.system import Option, system_names

# The parser and main live here; the verbs in mlsd.cli.build (make and run systems) and mlsd.cli.operate
# (read or change a trained one), their shared helpers in mlsd.cli.common.
SYSTEM_VERBS = ("run", "serve", "demo", "replay", "report")


def _system_address(parser: argparse.ArgumentParser, names: list[str], host: str, port: str) -> None:
    """The system, its home and an HTTP address: what ``serve`` binds and ``replay`` sends to."""
    parser.add_argument("system", choices=names)
    parser.add_argument("--home", help="the system's directory (default: $MLSD_HOME/SYSTEM)")
    parser.add_argument("--host", default="127.0.0.1", help=host)
    parser.add_argument("--port", type=int, default=8000, help=port)


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
                     help="ray: training frames and model fits on Ray (pip install 'mlsd[scale]'; for the "
                          "systems that declare it in `engines`)")
    run.add_argument("--train-workers", type=int, default=2, help="Ray Train workers (--engine ray; default 2)")
    run.set_defaults(run=_run)
    serve = sub.add_parser("serve", help="serve a reference system's champion model over HTTP")
    _system_address(serve, names, "address to bind", "port to bind")
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
    _system_address(rep, names, "the service's address", "the service's port")
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
