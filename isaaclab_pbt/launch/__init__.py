"""``scripts/launch_pbt.py`` / ``python -m isaaclab_pbt launch``: start and keep alive a whole population.

Examples::

    # 8 members on 4 GPUs of this machine (two per GPU, round robin)
    python scripts/launch_pbt.py --num_policies 8 --gpus 0,1,2,3 -- \\
        --task=Isaac-Dexsuite-Kuka-Allegro-Lift-v0 --num_envs=8192 agent.pbt.directory=/shared agent.pbt.workspace=ws

    # through Isaac Lab's launcher script, on a CPU-only machine
    python scripts/launch_pbt.py --num_policies 4 --python "./isaaclab.sh -p" -- --max_iterations=200

    # 4 rsl_rl members (scripts/rsl_rl/train.py; --library skrl for skrl)
    python scripts/launch_pbt.py --num_policies 4 --library rsl_rl -- --task=PointReach-v0 --max_iterations=150

    # on a Ray cluster, or as a Slurm array job
    python scripts/launch_pbt.py --num_policies 8 --backend ray --address auto --gpus_per_member 1 -- ...
    python scripts/launch_pbt.py --num_policies 8 --backend slurm --dry-run -- ... > pbt.sbatch
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from datetime import datetime
from typing import Any, Callable, Iterator, Optional, Sequence

from .plan import RUN_NAME, LaunchError, check_workspace_writable, parse_gpus, plan_workers, workspace_of

_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts")
LIBRARIES = tuple(RUN_NAME)
"""RL libraries a population can train with (``--library``)."""


def train_script(library: str) -> str:
    """The library's train script in a checkout (or an editable install); an installed wheel runs the same code as a module."""
    path = os.path.join(_SCRIPTS, "train.py" if library == "rl_games" else os.path.join(library, "train.py"))
    if os.path.isfile(path):
        return path
    return "-m isaaclab_pbt train" if library == "rl_games" else f"-m isaaclab_pbt.{library}.train"


LAUNCH_COMMAND = [os.path.join(_SCRIPTS, "launch_pbt.py")] if os.path.isfile(os.path.join(_SCRIPTS, "launch_pbt.py")) \
    else ["-m", "isaaclab_pbt", "launch"]


def build_parser() -> argparse.ArgumentParser:
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    invoked = {"launch_pbt.py": name, "isaaclab-pbt": "isaaclab-pbt launch"}.get(name, "python -m isaaclab_pbt launch")
    p = argparse.ArgumentParser(
        prog=invoked,
        description="Start N PBT members (one headless training process each) and keep them alive. "
                    "Train arguments go after '--'.",
        allow_abbrev=False,
    )
    p.add_argument("--num_policies", type=int, required=True, help="population size N")
    p.add_argument("--gpus", default=None, help="GPU indices to spread members over, e.g. 0,1,2,3 (default: none, CPU)")
    p.add_argument("--per_gpu", type=int, default=None, help="members per GPU, filled in order (default: round robin)")
    p.add_argument("--python", default=sys.executable, help="how to run Python, e.g. './isaaclab.sh -p' (default: this interpreter)")
    p.add_argument("--library", choices=LIBRARIES, default="rl_games",
                   help="RL library every member trains with; picks the train script (default: rl_games)")
    p.add_argument("--script", default=None,
                   help="training script, or '-m <module> [command]' (default: the library's script of this project, "
                        "scripts/train.py for rl_games, scripts/<library>/train.py for the others, or its module where "
                        "the package is installed without its scripts)")
    p.add_argument("--backend", choices=("local", "ray", "slurm"), default="local", help="where members run (default: local)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--cpus_per_member", type=float, default=1.0, help="Ray/Slurm CPUs per member (default: 1)")
    p.add_argument("--gpus_per_member", type=float, default=0.0, help="Ray/Slurm GPUs per member (default: 0)")
    p.add_argument("--max_restarts", type=int, default=3,
                   help="crashes per member within --restart_window after which it is given up (default: 3)")
    p.add_argument("--restart_window", type=float, default=3600.0,
                   help="seconds over which crashes are counted; older ones are forgiven (default: 3600)")
    p.add_argument("--hang_timeout", type=float, default=1800.0,
                   help="seconds without output after which a member is taken for hung, killed and restarted (0: never; default: 1800)")
    p.add_argument("--backoff", type=float, default=2.0, help="seconds before the first crash restart, doubled each time (default: 2)")
    p.add_argument("--members", default=None, help="only these member indices, e.g. 3 or 0,1 (used by the Slurm array job)")
    p.add_argument("--tag", default=None, help="run tag for folder names (default: the start time)")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between status refreshes (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print every member's command and environment, start nothing")
    return p


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: Optional[Sequence[str]] = None) -> int:
    own, train_args = _split(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own)
    args.script = args.script or train_script(args.library)
    tag = args.tag or datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    try:
        gpus = parse_gpus(args.gpus)
        members = None if args.members is None else [int(m) for m in args.members.split(",")]
        if args.max_restarts < 0:
            raise LaunchError(f"--max_restarts: must be >= 0, got {args.max_restarts}")
        specs = plan_workers(args.num_policies, train_args, args.script, shlex.split(args.python), gpus,
                             args.per_gpu, tag, members, on_gpu=args.backend != "local" and args.gpus_per_member > 0,
                             library=args.library)
        if not args.dry_run and args.backend != "slurm":  # the Slurm script runs where the folder is
            check_workspace_writable(train_args)
    except (LaunchError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    directory, workspace = workspace_of(train_args)
    root = os.path.join(directory, workspace)

    if args.backend == "slurm":
        from .slurm import batch_script

        launcher = [*shlex.split(args.python), *LAUNCH_COMMAND, "--library", args.library, "--script", args.script]
        text = batch_script(args.num_policies, launcher, train_args, tag, os.path.dirname(specs[0].log_path),
                            int(args.gpus_per_member), int(args.cpus_per_member), args.max_restarts)
        if args.dry_run:
            print(text, end="")
            return 0
        path = os.path.join(directory, f"pbt_{tag}.sbatch")
        os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}; submit it with: sbatch {path}")
        return 0

    if args.dry_run:
        print(f"# workspace: {root}")
        for spec in specs:
            print(f"# member {spec.idx:03d}, log {spec.log_path}")
            print(spec.shell())
        return 0

    from ..results.status import console as make_console

    console = make_console()
    if args.backend == "ray":
        return _run_ray(args, specs, root, console)
    return _run_local(args, specs, root, console)


@contextlib.contextmanager
def _live_view(console, render: Callable[[], Any], every_s: float = 30.0) -> Iterator[Callable[[], None]]:
    """Yields ``show()``: redraws ``render()`` in place on a terminal; in logs and CI, prints it every ``every_s``."""
    if console.is_terminal:
        from rich.live import Live

        with Live(render(), console=console, refresh_per_second=2) as live:
            yield lambda: live.update(render())
        return
    last = [time.monotonic()]

    def show() -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            console.print(render())

    yield show


def _run_local(args, specs, root, console) -> int:
    from .supervisor import Supervisor, members_table

    sup = Supervisor(specs, root, max_restarts=args.max_restarts, backoff_s=args.backoff,
                     restart_window_s=args.restart_window, hang_timeout_s=args.hang_timeout)
    start = time.monotonic()
    console.print(f"launching {len(specs)} member(s); workspace {root}; logs in {os.path.dirname(specs[0].log_path)}")
    with _live_view(console, lambda: members_table(root, sup.members)) as show:
        code = sup.run(args.refresh, show=lambda _sup: show())
    console.print(members_table(root, sup.members))
    for line in sup.summary():
        console.print(line)
    console.print(f"launcher exit code {code} after {time.monotonic() - start:.0f} s")
    for m in sup.refused():  # last, so it is the line the user sees: restarting could not help
        print(f"launch: member {m.spec.idx:03d} refused to start: {m.error}", file=sys.stderr)
    return code


def _run_ray(args, specs, root, console) -> int:
    from .ray_backend import run_ray
    from .supervisor import table

    def to_keyboard_interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, to_keyboard_interrupt)
    states = {spec.idx: "running" for spec in specs}
    run_names = [spec.run_name for spec in specs]
    with _live_view(console, lambda: table(root, states, run_names)) as show:
        states.update(run_ray(specs, root, args.address, args.cpus_per_member, args.gpus_per_member, args.max_restarts,
                              refresh_s=args.refresh, show=lambda now: (states.update(now), show())))
    console.print(table(root, states, run_names))
    for idx, state in sorted(states.items()):
        console.print(f"member {idx:03d}: {state}")
    return 0 if all(s == "finished" for s in states.values()) else 1
