"""The ``mlsd`` command line."""

from __future__ import annotations

import argparse
import json
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
