"""Side-by-side measurements on the embedded task (ratios, not absolute numbers).

1. Applying a replacement: in place (load the donor file, swap state, set hyperparameters in the
   live agent) against restarting the process (a fresh ``scripts/train.py`` that restores the
   donor checkpoint and trains its first epoch, minus one epoch of training).
2. Training throughput with PBT on (the shipped interval, and a tick after every epoch) against
   PBT off: an off-run and an on-run train at the same time, each in its own process pinned to
   its own CPU, swapping CPUs each round (on a GPU or a single CPU: one after the other), so the
   machine's drift hits both alike; the median of the pairs' ratios and their range, and how long
   a publishing tick holds the training loop (the state is written in the background). Beside it,
   PBT's cost accounted inside the on-run, which the machine's drift does not blur: its time on
   the training thread (the objective's read at every env step; every tick's CPU time and its
   waits for the writer) plus the CPU time of its writer thread, as a share of the run; and the
   upper bound that counts each tick's wall time, which also holds the writer's slices of CPU.
3. What every member does at every tick besides publishing: scan the population
   (``Workspace.population()``) and decide (``decision.decide``), with ``--members`` synthetic
   members published through ``Workspace.publish``: the first scan of a process (cold), and a scan
   after every member published one new record (warm, what a running population sees).

    python bench/bench_pbt.py [--rounds 6] [--epochs 200] [--device cpu] [--num_envs 128] [--members 1024] [--only throughput]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
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


class TimedObserver(PbtObserver):
    """Accounts for PBT's time in the run: its hooks on the training thread, and the writer's CPU.

    Pinned to one CPU, the writer thread takes its CPU time (``writer_cpu``) from training. On the
    training thread, ``hooks`` sums the wall time of the objective's per-step read and of every
    tick: an upper bound, since a tick's wall time also holds the slices of CPU the writer took
    while it ran, which ``writer_cpu`` counts already. ``hooks_cpu`` counts each once: the per-step
    read's wall time (too short to be cut), each tick's own CPU time, and its waits for the writer
    (``waits``, the time a tick blocked on the previous publish). ``times`` keeps how long each
    publishing tick held the training loop.
    """

    def __init__(self, *args, times: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.times, self.hooks, self.hooks_cpu, self.waits, self.writer_cpu = times, 0.0, 0.0, 0.0, 0.0

    def after_init(self, algo):
        super().after_init(algo)
        publisher = self.member.publisher
        submit, publish, flush = publisher.submit, publisher._publish, publisher.flush
        publisher.submit = lambda *a: setattr(self, "published", True) or submit(*a)

        def timed_flush():
            t0 = time.perf_counter()
            try:
                return flush()
            finally:
                self.waits += time.perf_counter() - t0
        publisher.flush = timed_flush

        def timed_publish(*a):
            c0 = time.thread_time()
            try:
                publish(*a)
            finally:
                self.writer_cpu += time.thread_time() - c0
        publisher._publish = timed_publish

    def process_infos(self, infos, done_indices):
        IsaacAlgoObserver.process_infos(self, infos, done_indices)
        t0 = time.perf_counter()
        self.member.observe(infos)
        dt = time.perf_counter() - t0
        self.hooks += dt
        self.hooks_cpu += dt

    def tick(self):
        self.published, t0, c0, w0 = False, time.perf_counter(), time.thread_time(), self.waits
        try:
            return super().tick()
        finally:
            dt = time.perf_counter() - t0
            self.hooks += dt
            self.hooks_cpu += time.thread_time() - c0 + self.waits - w0
            if self.published:
                self.times.append(dt)


def train_once(tmp: str, name: str, epochs: int, interval: Optional[int]) -> dict:
    """One timed run in this process: seconds of ``agent.train()`` (with PBT, until its last state is on disk),
    the ticks that published, and PBT's accounted seconds (its time on the training thread plus the writer's CPU),
    counted once (``pbt_s``) and as an upper bound (``pbt_wall_s``, see :class:`TimedObserver`)."""
    ticks: list[float] = []
    observer = None
    if interval is not None:
        cfg = PbtCfg.from_dict({"enabled": True, "num_policies": 1, "min_initialized": 1, "directory": tmp,
                                "workspace": f"ws_{name}", "interval_steps": interval, "objective": "episode.Curriculum/adr",
                                "mutation": {"agent.params.config.learning_rate": "mutate_float"}})
        observer = lambda agent_cfg: TimedObserver(cfg, agent_cfg, seed=0, times=ticks)  # noqa: E731
    agent = make_agent(tmp, name, epochs, observer)
    t0 = time.perf_counter()
    agent.train()
    pbt_s = pbt_wall_s = 0.0
    if observer:
        timed = agent.algo_observer
        timed.flush()
        pbt_s, pbt_wall_s = timed.hooks_cpu + timed.writer_cpu, timed.hooks + timed.writer_cpu
    return {"train_s": time.perf_counter() - t0, "ticks_s": ticks, "pbt_s": pbt_s, "pbt_wall_s": pbt_wall_s}


def child(spec: str) -> None:
    """A run of :func:`bench_throughput`'s pair: pinned to its CPU, it trains when the parent says go."""
    global DEVICE, NUM_ENVS
    spec = json.loads(spec)
    DEVICE, NUM_ENVS = spec["device"], spec["num_envs"]
    if spec["cpu"] is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    torch.set_num_threads(1)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        agent_ready = make_agent(spec["tmp"], f"warm_{spec['name']}", 1)  # imports and first-call costs before the clock
        agent_ready.train()
    print("ready", flush=True)
    sys.stdin.readline()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        result = train_once(spec["tmp"], spec["name"], spec["epochs"], spec["interval"])
    print(json.dumps(result), flush=True)


def run_pair(tmp: str, name: str, epochs: int, intervals: list[Optional[int]], cpus: list[Optional[int]]) -> list[dict]:
    """Train one run per interval at the same time, each in its own process pinned to its CPU, started together."""
    procs = []
    for i, (interval, cpu) in enumerate(zip(intervals, cpus)):
        spec = json.dumps({"tmp": tmp, "name": f"{name}_{i}", "epochs": epochs, "interval": interval, "cpu": cpu,
                           "device": DEVICE, "num_envs": NUM_ENVS})
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", spec], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1")))
    for p in procs:
        assert p.stdout.readline().strip() == "ready", f"a benchmark run failed to start (exit {p.wait()})"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.wait()
    return results


def bench_throughput(tmp: str, rounds: int, epochs: int) -> dict:
    """PBT off against each PBT-on mode, the two trained at the same time on two CPUs (swapped each round).

    Run side by side, the two see the same machine at the same moment, so the drift of a shared
    virtual machine (often 10 % between runs a minute apart) cancels out of their ratio; each
    process is pinned to one CPU, so the on-run's writer thread shares its own CPU only and takes
    nothing from the off-run. With fewer than two CPUs, or on a GPU (two processes on one GPU would
    time-slice it), the two run one after the other instead, alternating their order.
    """
    agent_cfg, _, shipped = configure(*parse_args([]))
    cfg = agent_cfg["params"]["config"]
    per_epoch = NUM_ENVS * cfg["horizon_length"]
    every = shipped.interval_steps // (cfg["num_actors"] * cfg["horizon_length"])  # the shipped interval, in epochs
    modes = {f"on (shipped, every {every} epochs)": every * per_epoch, "on (tick every epoch)": per_epoch}
    side_by_side = DEVICE == "cpu" and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0))[:2] if side_by_side else [None, None]
    out = {}
    for name, interval in modes.items():
        ratios, off_s, on_s, ticks, accounted, bound = [], [], [], [], [], []
        for r in range(rounds):
            order = [None, interval] if r % 2 == 0 else [interval, None]
            if side_by_side:
                results = run_pair(tmp, f"tp_{interval}_{r}", epochs, order, cores)
            else:
                results = [run_pair(tmp, f"tp_{interval}_{r}_{i}", epochs, [iv], [None])[0] for i, iv in enumerate(order)]
            off, on = results[order.index(None)], results[order.index(interval)]
            ratios.append(off["train_s"] / on["train_s"])
            off_s.append(off["train_s"])
            on_s.append(on["train_s"])
            ticks += on["ticks_s"]
            accounted.append(1 - on["pbt_s"] / on["train_s"])
            bound.append(1 - on["pbt_wall_s"] / on["train_s"])
        out[name] = {"ratio": statistics.median(ratios), "ratios": sorted(ratios), "off_s": statistics.median(off_s),
                     "on_s": statistics.median(on_s), "tick_s": statistics.median(ticks), "side_by_side": side_by_side,
                     "frames": epochs * per_epoch, "accounted": statistics.median(accounted), "accounted_range": (min(accounted), max(accounted)),
                     "accounted_wall": statistics.median(bound)}
    return out


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
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the throughput pairs (the CPUs swap each round)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs per throughput run")
    parser.add_argument("--repeats", type=int, default=30, help="in-place swaps timed (restarts: a tenth, at least 3)")
    parser.add_argument("--device", default=DEVICE, help="torch device of the agent and the env, e.g. cpu or cuda:0")
    parser.add_argument("--num_envs", type=int, default=NUM_ENVS, help="parallel environments per agent")
    parser.add_argument("--members", type=int, default=1024, help="synthetic members of the scan measurement")
    parser.add_argument("--scans", type=int, default=3, help="scans timed, cold and warm each (median)")
    parser.add_argument("--only", choices=["apply", "throughput", "scan"], help="run one of the three measurements")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a throughput run started by run_pair
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    DEVICE, NUM_ENVS = args.device, args.num_envs
    parts = [args.only] if args.only else ["apply", "throughput", "scan"]
    # rl_games prints every epoch and checkpoint
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        apply = bench_apply(tmp, args.repeats) if "apply" in parts else None
        fps = bench_throughput(tmp, args.rounds, args.epochs) if "throughput" in parts else None
        scan = bench_scan(tmp, args.members, args.scans) if "scan" in parts else None
    print(f"\nembedded task, {NUM_ENVS} envs on {DEVICE}, 1 torch thread, {os.cpu_count()} CPUs")
    if apply:
        print(f"apply a replacement in place : {apply['in_place_s'] * 1e3:8.1f} ms (median)")
        print(f"apply it by restarting       : {apply['restart_s'] * 1e3:8.1f} ms (median, one epoch of {apply['epoch_s'] * 1e3:.0f} ms subtracted)")
        print(f"restart / in place           : {apply['restart_s'] / apply['in_place_s']:8.0f} x")
    for name, m in (fps or {}).items():
        how = "side by side on two CPUs" if m["side_by_side"] else "one after the other"
        ratios = m["ratios"]
        print(f"throughput PBT {name:<32}: {m['ratio']:.4f} of PBT off (median of {len(ratios)} pairs run {how}; "
              f"{ratios[0]:.4f}..{ratios[-1]:.4f}; {m['frames']} frames in {m['off_s']:.2f} s off, {m['on_s']:.2f} s on; "
              f"a tick holds training {m['tick_s'] * 1e3:.1f} ms)")
        lo, hi = m["accounted_range"]
        print(f"  accounted in the on-run                 : {m['accounted']:.4f} (1 - PBT's share of its time: per-step "
              f"objective reads, ticks' CPU and waits on the training thread, plus the writer's CPU; {lo:.4f}..{hi:.4f}; "
              f"counting ticks' wall time: {m['accounted_wall']:.4f})")
    if scan:
        print(f"scan + decision, {args.members} members, cold : {scan['cold_s'] * 1e3:8.1f} ms (median of {args.scans}; first scan of a process)")
        print(f"scan + decision, {args.members} members, warm : {scan['warm_s'] * 1e3:8.1f} ms (median of {args.scans}; every member published anew)")


if __name__ == "__main__":
    main()
