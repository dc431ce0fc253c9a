"""Side-by-side measurements on the embedded task (ratios, not absolute numbers).

1. Applying a replacement: in place (load the donor file, swap state, set hyperparameters in the
   live agent) against restarting the process (a fresh ``scripts/train.py`` that restores the
   donor checkpoint and trains its first epoch, minus one epoch of training).
2. Training throughput with PBT on (the shipped interval, and a tick after every epoch) against
   PBT off, each run alternated with the others so machine noise hits all of them alike (the
   ratio of the medians, and each round's ratio: median and range), and how long a publishing
   tick holds the training loop (the state is written in the background).
3. What every member does at every tick besides publishing: scan the population
   (``Workspace.population()``) and decide (``decision.decide``), with ``--members`` synthetic
   members published through ``Workspace.publish``: the first scan of a process (cold), and a scan
   after every member published one new record (warm, what a running population sees).

    python bench/bench_pbt.py [--rounds 3] [--epochs 60] [--device cpu] [--num_envs 128] [--members 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_games.common.algo_observer import IsaacAlgoObserver  # noqa: E402

from isaaclab_pbt.core.config import PbtCfg  # noqa: E402
from isaaclab_pbt.core.decision import decide  # noqa: E402
from isaaclab_pbt.core.mutation import member_rng  # noqa: E402
from isaaclab_pbt.core.workspace import Record, Workspace  # noqa: E402
from isaaclab_pbt.rl_games import checkpoint
from isaaclab_pbt.rl_games import learner as live  # noqa: E402
from isaaclab_pbt.rl_games.observer import PbtObserver  # noqa: E402
from isaaclab_pbt.rl_games.runner import build_runner  # noqa: E402
from isaaclab_pbt.rl_games.train import configure, parse_args  # noqa: E402

NUM_ENVS = 128
DEVICE = "cpu"


def make_agent(train_dir: str, run: str, epochs: int, observer=None):
    args, overrides = parse_args([f"--num_envs={NUM_ENVS}", f"--device={DEVICE}", f"--max_iterations={epochs}"])
    agent_cfg, _, _ = configure(args, overrides)
    cfg = agent_cfg["params"]["config"]
    cfg.update(train_dir=train_dir, full_experiment_name=run, print_stats=False)
    runner = build_runner(agent_cfg, observer(agent_cfg) if observer else IsaacAlgoObserver())
    return runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params)


def bench_apply(tmp: str, repeats: int) -> dict:
    donor = make_agent(tmp, "donor", epochs=3)
    donor.train()
    path = os.path.join(tmp, "donor.pth")
    with open(path, "wb") as f:
        checkpoint.save(checkpoint.published_state(donor), f)
    values = {"agent.params.config.learning_rate": 1e-3, "agent.params.config.gamma": 0.98}

    member = make_agent(tmp, "member", epochs=3)
    member.train()
    in_place = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        checkpoint.load_into(member, checkpoint.load(path))
        live.write(member, values)
        in_place.append(time.perf_counter() - t0)

    epoch_times = []
    for _ in range(5):
        member.max_epochs = member.epoch_num + 1
        t0 = time.perf_counter()
        member.train()
        epoch_times.append(time.perf_counter() - t0)
    epoch = statistics.median(epoch_times)

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    restart = []
    for i in range(max(3, repeats // 10)):
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--num_envs={NUM_ENVS}", f"--device={DEVICE}", f"--checkpoint={path}",
               f"--max_iterations={donor.epoch_num + 1}", f"+agent.params.config.full_experiment_name=restart{i}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True)
        restart.append(time.perf_counter() - t0 - epoch)
    return {"in_place_s": statistics.median(in_place), "restart_s": statistics.median(restart), "epoch_s": epoch}


def bench_throughput(tmp: str, rounds: int, epochs: int) -> dict:
    agent_cfg, _, shipped = configure(*parse_args([]))
    cfg = agent_cfg["params"]["config"]
    per_epoch = NUM_ENVS * cfg["horizon_length"]
    every = shipped.interval_steps // (cfg["num_actors"] * cfg["horizon_length"])  # the shipped interval, in epochs
    frames = epochs * per_epoch
    modes = {"off": None, f"on (shipped, every {every} epochs)": every * per_epoch, "on (tick every epoch)": per_epoch}
    fps: dict[str, list[float]] = {m: [] for m in modes}
    ticks: dict[str, list[float]] = {m: [] for m in modes}  # seconds each tick held the training loop

    class TimedObserver(PbtObserver):
        """Times the ticks that publish (not those between interval boundaries)."""

        def __init__(self, *args, times: list, **kwargs):
            super().__init__(*args, **kwargs)
            self.times = times

        def after_init(self, algo):
            super().after_init(algo)
            publisher = self.member.publisher
            submit = publisher.submit
            publisher.submit = lambda *a: setattr(self, "published", True) or submit(*a)

        def tick(self):
            self.published, t0 = False, time.perf_counter()
            try:
                return super().tick()
            finally:
                if self.published:
                    self.times.append(time.perf_counter() - t0)

    for r in range(rounds):
        for name, interval in modes.items():
            observer = None
            if interval is not None:
                cfg = PbtCfg.from_dict({"enabled": True, "num_policies": 1, "min_initialized": 1, "directory": tmp,
                                        "workspace": f"ws_{r}_{interval}", "interval_steps": interval,
                                        "objective": "episode.Curriculum/adr",
                                        "mutation": {"agent.params.config.learning_rate": "mutate_float"}})

                observer = lambda agent_cfg, cfg=cfg, name=name: TimedObserver(cfg, agent_cfg, seed=0, times=ticks[name])
            agent = make_agent(tmp, f"tp_{r}_{len(fps[name])}_{interval}", epochs, observer)
            t0 = time.perf_counter()
            agent.train()
            if interval is not None:
                agent.algo_observer.flush()  # a run ends once its last state is on disk
            fps[name].append(frames / (time.perf_counter() - t0))
    # rounds alternate the modes, so a round's ratio is the least exposed to the machine's drift
    return {name: {"fps": statistics.median(v), "ratios": sorted(a / b for a, b in zip(v, fps["off"])),
                   "tick_s": statistics.median(ticks[name]) if ticks[name] else None} for name, v in fps.items()}


def bench_scan(tmp: str, members: int, repeats: int) -> dict:
    """Seconds one member spends scanning ``members`` published members and deciding, cold and warm."""
    agent_cfg, _, cfg = configure(*parse_args(["agent.pbt.enabled=True", f"agent.pbt.num_policies={members}", "agent.pbt.policy_idx=0",
                                               f"agent.pbt.directory={tmp}", "agent.pbt.workspace=scan"]))
    rng = random.Random(0)
    values = cfg.start_values(agent_cfg)
    writer = Workspace(cfg.workspace_dir, members)  # the other members' processes

    def publish_all(iteration: int) -> None:
        for idx in range(members):
            hp = {k: v * rng.uniform(0.8, 1.2) if isinstance(v, float) else v for k, v in values.items()}
            writer.publish(Record(idx, iteration, iteration * cfg.interval_steps, rng.random(), hp), lambda f: f.write(b"w" * 64))
            writer.cleanup(idx, cfg.keep_checkpoints)

    def tick(ws: Workspace, iteration: int) -> float:
        own = Record(0, iteration, iteration * cfg.interval_steps, rng.random(), values)
        t0 = time.perf_counter()
        records = ws.population()
        records[0] = own
        decide(cfg, own, records, time.time(), 0, member_rng(0, 0, iteration), own.objective, ws.history)
        return time.perf_counter() - t0

    publish_all(1)
    cold = [tick(Workspace(cfg.workspace_dir, members), 1) for _ in range(repeats)]  # a fresh process each time
    scanner, warm = Workspace(cfg.workspace_dir, members), []
    tick(scanner, 1)
    for it in range(2, 2 + repeats):
        publish_all(it)
        warm.append(tick(scanner, it))
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm)}


def main() -> None:
    global DEVICE, NUM_ENVS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the throughput runs")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per throughput run")
    parser.add_argument("--repeats", type=int, default=30, help="in-place swaps timed (restarts: a tenth, at least 3)")
    parser.add_argument("--device", default=DEVICE, help="torch device of the agent and the env, e.g. cpu or cuda:0")
    parser.add_argument("--num_envs", type=int, default=NUM_ENVS, help="parallel environments per agent")
    parser.add_argument("--members", type=int, default=1024, help="synthetic members of the scan measurement")
    parser.add_argument("--scans", type=int, default=3, help="scans timed, cold and warm each (median)")
    args = parser.parse_args()
    DEVICE, NUM_ENVS = args.device, args.num_envs
    # rl_games prints every epoch and checkpoint
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        apply = bench_apply(tmp, args.repeats)
        fps = bench_throughput(tmp, args.rounds, args.epochs)
        scan = bench_scan(tmp, args.members, args.scans)
    print(f"\nembedded task, {NUM_ENVS} envs on {DEVICE}, 1 torch thread, {os.cpu_count()} CPUs")
    print(f"apply a replacement in place : {apply['in_place_s'] * 1e3:8.1f} ms (median)")
    print(f"apply it by restarting       : {apply['restart_s'] * 1e3:8.1f} ms (median, one epoch of {apply['epoch_s'] * 1e3:.0f} ms subtracted)")
    print(f"restart / in place           : {apply['restart_s'] / apply['in_place_s']:8.0f} x")
    base = fps["off"]["fps"]
    for name, m in fps.items():
        line = f"throughput PBT {name:<32}: {m['fps']:9.0f} frames/s  ({m['fps'] / base:.3f} of PBT off"
        if m["tick_s"] is not None:
            ratios = m["ratios"]
            line += (f"; per round {statistics.median(ratios):.3f}, {ratios[0]:.3f}..{ratios[-1]:.3f};"
                     f" a tick holds training {m['tick_s'] * 1e3:.1f} ms)")
        print(line + ("" if m["tick_s"] is not None else ")"))
    print(f"scan + decision, {args.members} members, cold : {scan['cold_s'] * 1e3:8.1f} ms (median of {args.scans}; first scan of a process)")
    print(f"scan + decision, {args.members} members, warm : {scan['warm_s'] * 1e3:8.1f} ms (median of {args.scans}; every member published anew)")


if __name__ == "__main__":
    main()
