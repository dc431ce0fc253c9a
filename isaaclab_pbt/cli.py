"""``python -m isaaclab_pbt <command>``: tools that read a PBT workspace."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from .status import console, population_rows, render_table


def _status(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.workspace):
        print(f"status: workspace '{args.workspace}' is not a folder", file=sys.stderr)
        return 2
    rows = population_rows(args.workspace, args.stale_after)
    if args.json:
        print(json.dumps({"workspace": os.path.abspath(args.workspace), "members": rows}, indent=2))
        return 0
    if not rows:
        print(f"status: no members in '{args.workspace}' yet")
        return 0
    console().print(render_table(rows, f"PBT population in {args.workspace}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m isaaclab_pbt", description="Inspect Population Based Training workspaces.")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="the population as a table: objective, iteration, frame, replacements, liveness")
    status.add_argument("workspace", help="the workspace folder (<agent.pbt.directory>/<agent.pbt.workspace>)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--stale-after", type=float, default=3600.0, metavar="S",
                        help="seconds without a new record after which a member shows as stale (default: 3600)")
    status.set_defaults(run=_status)
    sub.add_parser("launch", help="start and keep alive a population (see 'launch --help')", add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # its own parser: train arguments follow '--'
        from .launch import main as launch

        return launch(argv[1:])
    args = build_parser().parse_args(argv)
    return args.run(args)
