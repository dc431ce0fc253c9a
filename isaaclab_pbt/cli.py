"""``python -m isaaclab_pbt <command>``: the package's command line: the results tools, the launcher, train and play.

    python -m isaaclab_pbt status  <workspace> [--json]
    python -m isaaclab_pbt lineage <workspace> [--json]
    python -m isaaclab_pbt plot    <workspace> [-o population.png]
    python -m isaaclab_pbt export  <workspace> <folder>
    python -m isaaclab_pbt launch  --num_policies N [...] -- <train arguments>
    python -m isaaclab_pbt train   <train arguments>     (as scripts/train.py)
    python -m isaaclab_pbt play    <play arguments>      (as scripts/play.py)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Optional

from .core.workspace import Workspace
from .results.status import console, population_rows, render_table


def _status(args: argparse.Namespace) -> int:
    rows = population_rows(args.workspace, args.stale_after)
    if args.json:
        print(json.dumps({"workspace": os.path.abspath(args.workspace), "members": rows}, indent=2))
        return 0
    if all(r["state"] == "no record" for r in rows):
        print(f"status: waiting for the first records in '{args.workspace}' (members publish at the end of their first PBT interval)")
        return 0
    console().print(render_table(rows, f"PBT population in {args.workspace}"))
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from .results.lineage import family, render_text

    tree = family(Workspace(args.workspace))
    print(json.dumps({"members": tree}, indent=2) if args.json else render_text(tree), end="" if not args.json else "\n")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .results.plot import plot_population

    data = plot_population(args.workspace, args.output)
    replacements = sum(len(m["replacements"]) for m in data["members"].values())
    print(f"wrote {data['output']}: {len(data['members'])} members, {replacements} replacements")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .results.export import export_best

    out = export_best(args.workspace, args.folder)
    record = out["record"]
    print(f"exported member {record.policy_idx:03d} (objective {record.objective}, frame {record.frame:,}) "
          f"to {out['checkpoint']} with a schedule of {len(out['schedule'])} entries")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m isaaclab_pbt", description="Inspect and run Population Based Training.")
    sub = parser.add_subparsers(dest="command", required=True)

    def workspace_arg(p):
        p.add_argument("workspace", help="the workspace folder (<agent.pbt.directory>/<agent.pbt.workspace>)")

    status = sub.add_parser("status", help="the population as a table: objective, iteration, frame, replacements, liveness")
    workspace_arg(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--stale-after", type=_seconds, default=None, metavar="S",
                        help="seconds without a new record after which a member shows as stale "
                             "(default: 3 times its recent gap between records, at least 60)")
    status.set_defaults(run=_status)

    lineage = sub.add_parser("lineage", help="the family tree of the members: whose weights, which mutations, when")
    workspace_arg(lineage)
    lineage.add_argument("--json", action="store_true", help="print JSON instead of text")
    lineage.set_defaults(run=_lineage)

    plot = sub.add_parser("plot", help="objective and hyperparameters of every member against frames, as an image")
    workspace_arg(plot)
    plot.add_argument("-o", "--output", default=None,
                      help="image file (.png, .pdf, .svg; default: <workspace>/plots/population.png)")
    plot.set_defaults(run=_plot)

    export = sub.add_parser("export", help="copy the best member's checkpoint and hyperparameter schedule out")
    workspace_arg(export)
    export.add_argument("folder", help="where to write the checkpoint, best.yaml and schedule.yaml")
    export.set_defaults(run=_export)

    sub.add_parser("launch", help="start and keep alive a population (see 'launch --help')", add_help=False)
    sub.add_parser("train", help="train one learner or one PBT member, as scripts/train.py (see 'train --help')", add_help=False)
    sub.add_parser("play", help="evaluate a checkpoint or the workspace's best member, as scripts/play.py", add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # its own parser: train arguments follow '--'
        from .launch import main as launch

        return launch(argv[1:])
    if argv[:1] in (["train"], ["play"]):  # their own parsers, as the scripts
        from .rl_games import play, train

        (train if argv[0] == "train" else play).main(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.workspace):
        print(f"{args.command}: workspace '{args.workspace}' is not a folder", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (ValueError, OSError) as e:  # what the workspace holds or where a result goes: one line, not a traceback
        print(f"{args.command}: {e}", file=sys.stderr)
        return 1
