"""One process per member against the whole population in one process (``agent.pbt.mode=shared``), side by side.

The same population both ways: ``--members`` members on the embedded PointReach task (rl_games, or
rsl_rl with ``--library rsl_rl``),
member ``i`` with seed ``i`` and the shipped hyperparameters, ``--epochs`` epochs each, a
PBT interval of 4 epochs (``--interval``, frames). Processes are started together as a launcher would
(``scripts/train.py`` each); the one-process population is one ``scripts/train.py`` with
``agent.pbt.mode=shared``. The two are run alternately, ``--rounds`` times each, and reported:

* objective per frame: the members' mean objective in their records at each interval;
* memory: the peak of the summed PSS (proportional set size: shared library pages counted once
  across processes, the fair sum) and of the summed RSS, sampled with psutil every 0.2 s;
* start-up: seconds from launch until every member has finished its first epoch (rl_games prints
  a line per epoch), which is start-up plus one epoch of training;
* throughput: frames of all members per second of wall time after that point, to the end, and
  over the whole run (start-up included);
* a replacement: what an underperformer does to take a donor's state, from memory (one process)
  against from the donor's published file (one process per member, in place), alternated.

    python bench/bench_shared.py [--library rl_games] [--members 8] [--epochs 40] [--rounds 2] [--device cpu] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from isaaclab_pbt.core.workspace import Workspace  # noqa: E402

#: library -> (train script, the line it prints when an epoch is done, the number of the first epoch)
LIBRARIES = {
    "rl_games": (os.path.join(ROOT, "scripts", "train.py"), re.compile(rb"epoch: (\d+)"), 1),
    "rsl_rl": (os.path.join(ROOT, "scripts", "rsl_rl", "train.py"), re.compile(rb"Learning iteration (\d+)/"), 0),
}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


class Run:
    """Processes started now, their output read line by line (first-epoch times), their memory sampled."""

    def __init__(self, commands: list[list[str]], members: int, cwd: str, epoch: re.Pattern, first: int):
        self.start = time.monotonic()
        self.epoch, self.first = epoch, first
        self.members = members
        self.first_epochs: list[float] = []
        self.peak_pss = self.peak_rss = 0
        self.procs = [subprocess.Popen(c, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands]
        self.logs = [bytearray() for _ in self.procs]
        self.readers = [threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(len(self.procs))]
        for t in self.readers:
            t.start()

    def _read(self, i: int) -> None:
        for line in self.procs[i].stdout:
            self.logs[i] += line
            m = self.epoch.search(line)
            if m and int(m.group(1)) == self.first:
                self.first_epochs.append(time.monotonic() - self.start)

    def wait(self) -> float:
        """Sample memory until every process ended; returns the wall time."""
        while any(p.poll() is None for p in self.procs):
            pss = rss = 0
            for p in self.procs:
                try:
                    info = psutil.Process(p.pid).memory_full_info()
                    pss, rss = pss + info.pss, rss + info.rss
                except psutil.Error:
                    pass
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            time.sleep(0.2)
        wall = time.monotonic() - self.start
        for t in self.readers:
            t.join(timeout=10)
        for i, p in enumerate(self.procs):
            if p.returncode != 0:
                raise SystemExit(f"bench_shared: a run failed:\n{self.logs[i][-3000:].decode(errors='replace')}")
        return wall


def population(kind: str, args: argparse.Namespace, tmp: str) -> dict:
    folder = tempfile.mkdtemp(dir=tmp, prefix=kind)
    common = [f"--max_iterations={args.epochs}", f"--device={args.device}", "agent.pbt.enabled=True",
              f"agent.pbt.num_policies={args.members}", f"agent.pbt.directory={folder}", "agent.pbt.workspace=ws",
              f"agent.pbt.interval_steps={args.interval}", "agent.pbt.keep_checkpoints=1000"]  # every record kept for the curve
    train, epoch, first = LIBRARIES[args.library]
    if kind == "processes":
        commands = [[sys.executable, train, f"--seed={i}", f"agent.pbt.policy_idx={i}", *common] for i in range(args.members)]
    else:
        commands = [[sys.executable, train, "--seed=0", "agent.pbt.mode=shared", *common]]
    run = Run(commands, args.members, folder, epoch, first)
    wall = run.wait()
    ws = Workspace(os.path.join(folder, "ws"))
    curve: dict[int, list[float]] = {}
    for i in range(args.members):
        for it in ws.iterations(i):
            r = ws.read_record(i, it)
            if r is not None and r.objective is not None:
                curve.setdefault(r.frame, []).append(r.objective)
    started = max(run.first_epochs) if len(run.first_epochs) >= args.members else float("nan")
    frames = args.members * args.epochs * 128 * 16
    done_after_first = frames * (args.epochs - 1) / args.epochs  # what was trained after every member's first epoch
    return {"wall": wall, "started": started, "fps": done_after_first / (wall - started), "fps_all": frames / wall, "pss": run.peak_pss,
            "rss": run.peak_rss, "curve": {f: statistics.fmean(v) for f, v in sorted(curve.items()) if len(v) == args.members}}


def bench_swap(tmp: str, repeats: int) -> dict:
    """Seconds to take a donor's state and values: from its published file, and from memory (medians, alternated)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_pbt import make_agent

    from isaaclab_pbt.rl_games import checkpoint
    from isaaclab_pbt.rl_games import learner as live

    donor = make_agent(tmp, "donor", epochs=3)
    donor.train()
    snapshot = checkpoint.published_state(donor)  # what the exchange holds: the donor's CPU snapshot
    path = os.path.join(tmp, "donor.pth")
    with open(path, "wb") as f:
        checkpoint.save(snapshot, f)
    member = make_agent(tmp, "member", epochs=3)
    member.train()
    values = {"agent.params.config.learning_rate": 1e-3, "agent.params.config.gamma": 0.98}
    times: dict[str, list[float]] = {"file": [], "memory": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        checkpoint.load_into(member, checkpoint.load(path))
        live.write(member, values)
        t1 = time.perf_counter()
        checkpoint.load_into(member, snapshot)
        live.write(member, values)
        t2 = time.perf_counter()
        times["file"].append(t1 - t0)
        times["memory"].append(t2 - t1)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--library", choices=sorted(LIBRARIES), default="rl_games")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--interval", type=int, default=8192, help="agent.pbt.interval_steps (default: 4 epochs)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=50, help="replacements timed each way")
    args = p.parse_args()
    results: dict[str, list[dict]] = {"processes": [], "shared": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for kind in ("processes", "shared") if r % 2 == 0 else ("shared", "processes"):
                res = population(kind, args, tmp)
                results[kind].append(res)
                print(f"round {r + 1} {kind:9s}: wall {res['wall']:.1f} s, every member past epoch 1 at {res['started']:.1f} s, "
                      f"{res['fps']:.0f} frames/s after it, peak PSS {res['pss'] / 2**20:.0f} MiB (RSS {res['rss'] / 2**20:.0f} MiB)",
                      flush=True)
        swap = bench_swap(tmp, args.repeats)  # rl_games agents, whatever --library

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    print(f"\n{args.library}: {args.members} members x {args.epochs} epochs of 128 envs x 16 steps on PointReach ({args.device}), "
          f"medians of {args.rounds} rounds each:")
    print(f"  memory (peak PSS): shared / processes = {med('shared', 'pss') / med('processes', 'pss'):.3f} "
          f"({med('shared', 'pss') / 2**20:.0f} vs {med('processes', 'pss') / 2**20:.0f} MiB; RSS "
          f"{med('shared', 'rss') / 2**20:.0f} vs {med('processes', 'rss') / 2**20:.0f} MiB)")
    print(f"  every member past its first epoch: processes / shared = {med('processes', 'started') / med('shared', 'started'):.2f}x "
          f"sooner ({med('shared', 'started'):.1f} vs {med('processes', 'started'):.1f} s)")
    print(f"  frames per second after that: shared / processes = {med('shared', 'fps') / med('processes', 'fps'):.3f} "
          f"({med('shared', 'fps'):.0f} vs {med('processes', 'fps'):.0f})")
    print(f"  frames per second over the whole run: shared / processes = {med('shared', 'fps_all') / med('processes', 'fps_all'):.3f} "
          f"({med('shared', 'fps_all'):.0f} vs {med('processes', 'fps_all'):.0f})")
    print(f"  a replacement: from memory {swap['memory'] * 1e3:.2f} ms, from the published file (in place today) "
          f"{swap['file'] * 1e3:.2f} ms (medians of {args.repeats}): memory / file = {swap['memory'] / swap['file']:.3f}")
    print("  mean objective of the members per frame (each round):")
    for kind in ("processes", "shared"):
        for r in results[kind]:
            print(f"    {kind:9s} " + "  ".join(f"{f // 1000}k: {v:.3f}" for f, v in r["curve"].items()))


if __name__ == "__main__":
    main()
