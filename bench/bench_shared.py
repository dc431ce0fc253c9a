"""One process per member against the whole population in one process (``agent.pbt.mode=shared``, ``batched``), side by side.

The same population both ways: ``--members`` members on the embedded PointReach task (rl_games, or
rsl_rl or skrl with ``--library``),
member ``i`` with seed ``i`` and the shipped hyperparameters, ``--epochs`` epochs each, a
PBT interval of 4 epochs (``--interval``, frames). Processes are started together as a launcher would
(``scripts/train.py`` each); the one-process population is one ``scripts/train.py`` with
``agent.pbt.mode=shared`` (or each mode of ``--modes``: ``--modes shared,batched``
adds the library's batched PPO). The kinds are run in turn, the order rotating each round,
``--rounds`` times each, and reported:

* objective per frame: the members' mean objective in their records at each interval;
* memory: the peak of the summed PSS (proportional set size: shared library pages counted once
  across processes, the fair sum) and of the summed RSS, sampled with psutil every 0.2 s;
* start-up: seconds from launch until every member has finished its first epoch (each library's
  members print a line per epoch), which is start-up plus one epoch of training;
* throughput: frames of all members per second of wall time after that point, to the end, and
  over the whole run (start-up included);
* a replacement: what an underperformer does to take a donor's state, from memory (one process)
  against from the donor's published file (one process per member, in place), alternated.

    python bench/bench_shared.py [--library rl_games] [--modes shared] [--members 8] [--epochs 40] [--rounds 2] [--device cpu] [--repeats 50]
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
    "skrl": (os.path.join(ROOT, "scripts", "skrl", "train.py"), re.compile(rb"skrl iteration (\d+)/"), 1),
}
#: library -> the line its batched population prints when an epoch is done, and the number of the first
BATCHED_EPOCH = {"rl_games": (re.compile(rb"batched PPO epoch (\d+):"), 1),
                 "rsl_rl": (re.compile(rb"batched PPO iteration (\d+)/"), 1)}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


class Run:
    """Processes started now, their output read line by line (first-epoch times), their memory sampled."""

    def __init__(self, commands: list[list[str]], members: int, cwd: str, epoch: re.Pattern, first: int, batched: bool = False):
        self.start = time.monotonic()
        self.batched = batched
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
            if m and int(m.group(1)) == self.first:  # a batched population's one line stands for every member
                self.first_epochs.extend([time.monotonic() - self.start] * (self.members if len(self.procs) == 1 and self.batched else 1))

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
        commands = [[sys.executable, train, "--seed=0", f"agent.pbt.mode={kind}", *common]]
        if kind == "batched":
            epoch, first = BATCHED_EPOCH[args.library]
    run = Run(commands, args.members, folder, epoch, first, batched=kind == "batched")
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


def bench_lane_swap(library: str, repeats: int) -> dict:
    """Seconds for a batched lane to take a donor lane's state from memory (medians), and for the library's own learner from a file."""
    import torch

    if library == "rl_games":
        import yaml
        from gymnasium import spaces

        from isaaclab_pbt.rl_games.batched import build_a2c

        cfg = yaml.safe_load(open(os.path.join(ROOT, "isaaclab_pbt", "agents", "point_reach_ppo.yaml")))
        box = (spaces.Box(-1.0, 1.0, (5,)), spaces.Box(-1.0, 1.0, (2,)))
        lanes = build_a2c([{"params": dict(cfg["params"], seed=i)} for i in range(8)], *box, 128, "cpu")
        file_times = None  # an rl_games agent loading a published file: bench_swap's "file"
    else:
        from rsl_rl.runners import OnPolicyRunner

        from isaaclab_pbt.core import agent_config
        from isaaclab_pbt.rsl_rl import state
        from isaaclab_pbt.rsl_rl.batched import build_ppo
        from isaaclab_pbt.rsl_rl.env import EmbeddedVecEnv
        from isaaclab_pbt.rsl_rl.runner import train_cfg
        from isaaclab_pbt.rsl_rl.train import AGENTS
        from isaaclab_pbt.tasks.point_reach import PointReachEnv

        cfg = agent_config.load(AGENTS["PointReach-v0"], "algorithm", "rsl_rl")
        lanes = build_ppo([dict(cfg, seed=i) for i in range(8)], 5, 2, 128, "cpu")
        runner = OnPolicyRunner(EmbeddedVecEnv(PointReachEnv(128)), train_cfg(cfg), log_dir=None, device="cpu")
        file_times = []
    snapshot = lanes.lane_state(0)  # what the exchange holds: the donor's CPU snapshot
    path = os.path.join(tempfile.mkdtemp(), "donor.pt")
    torch.save(snapshot, path)
    values = {"learning_rate": 1e-3, "gamma": 0.98}
    memory = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if file_times is not None:
            state.load_into(runner, torch.load(path, map_location="cpu", weights_only=True))
            for k, v in values.items():
                setattr(runner.alg, k, v)
        t1 = time.perf_counter()
        lanes.set_lane(3, snapshot)
        for k, v in values.items():
            lanes.hp[k][3] = v
        t2 = time.perf_counter()
        if file_times is not None:
            file_times.append(t1 - t0)
        memory.append(t2 - t1)
    return {"memory": statistics.median(memory), "file": statistics.median(file_times) if file_times else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--library", choices=sorted(LIBRARIES), default="rl_games")
    p.add_argument("--modes", default="shared", help="one-process modes to set against processes, comma-separated (batched: rl_games, rsl_rl)")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--interval", type=int, default=8192, help="agent.pbt.interval_steps (default: 4 epochs)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=50, help="replacements timed each way")
    args = p.parse_args()
    modes = args.modes.split(",")
    kinds = ["processes", *modes]
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                res = population(kind, args, tmp)
                results[kind].append(res)
                print(f"round {r + 1} {kind:9s}: wall {res['wall']:.1f} s, every member past epoch 1 at {res['started']:.1f} s, "
                      f"{res['fps']:.0f} frames/s after it, peak PSS {res['pss'] / 2**20:.0f} MiB (RSS {res['rss'] / 2**20:.0f} MiB)",
                      flush=True)
        swap = bench_swap(tmp, args.repeats)  # rl_games agents, whatever --library
        lane_swap = bench_lane_swap(args.library, args.repeats) if "batched" in modes else None

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    print(f"\n{args.library}: {args.members} members x {args.epochs} epochs of 128 envs x 16 steps on PointReach ({args.device}), "
          f"medians of {args.rounds} rounds each:")
    for mode in modes:
        print(f"  {mode}:")
        print(f"    memory (peak PSS): {mode} / processes = {med(mode, 'pss') / med('processes', 'pss'):.3f} "
              f"({med(mode, 'pss') / 2**20:.0f} vs {med('processes', 'pss') / 2**20:.0f} MiB; RSS "
              f"{med(mode, 'rss') / 2**20:.0f} vs {med('processes', 'rss') / 2**20:.0f} MiB)")
        print(f"    every member past its first epoch: processes / {mode} = {med('processes', 'started') / med(mode, 'started'):.2f}x "
              f"sooner ({med(mode, 'started'):.1f} vs {med('processes', 'started'):.1f} s)")
        print(f"    frames per second after that: {mode} / processes = {med(mode, 'fps') / med('processes', 'fps'):.3f} "
              f"({med(mode, 'fps'):.0f} vs {med('processes', 'fps'):.0f})")
        print(f"    frames per second over the whole run: {mode} / processes = "
              f"{med(mode, 'fps_all') / med('processes', 'fps_all'):.3f} ({med(mode, 'fps_all'):.0f} vs {med('processes', 'fps_all'):.0f})")
    print(f"  a replacement (rl_games): from memory {swap['memory'] * 1e3:.2f} ms, from the published file (in place today) "
          f"{swap['file'] * 1e3:.2f} ms (medians of {args.repeats}): memory / file = {swap['memory'] / swap['file']:.3f}")
    if lane_swap is not None:
        file_s = lane_swap["file"] if lane_swap["file"] is not None else swap["file"]  # rl_games: the agent of bench_swap
        print(f"  a replacement ({args.library} batched): a lane from memory {lane_swap['memory'] * 1e3:.2f} ms, a {args.library} "
              f"learner from the published file {file_s * 1e3:.2f} ms (medians of {args.repeats}): "
              f"memory / file = {lane_swap['memory'] / file_s:.3f}")
    print("  mean objective of the members per frame (each round):")
    for kind in kinds:
        for r in results[kind]:
            print(f"    {kind:9s} " + "  ".join(f"{f // 1000}k: {v:.3f}" for f, v in r["curve"].items()))

if __name__ == "__main__":
    main()
