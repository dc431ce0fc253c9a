"""Side-by-side measurements on the embedded task (ratios, not absolute numbers).

1. Applying a replacement: in place (load the donor file, swap state, set hyperparameters in the
   live agent) against restarting the process (a fresh ``scripts/train.py`` that restores the
   donor checkpoint and trains its first epoch, minus one epoch of training).
2. Training throughput with PBT on (the shipped interval, and a tick after every epoch) against
   PBT off, each run alternated with the others so machine noise hits all of them alike.

    python bench/bench_pbt.py [--rounds 3] [--epochs 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rl_games.common.algo_observer import IsaacAlgoObserver  # noqa: E402

from isaaclab_pbt import checkpoint, hparams  # noqa: E402
from isaaclab_pbt.config import PbtCfg  # noqa: E402
from isaaclab_pbt.observer import PbtObserver  # noqa: E402
from isaaclab_pbt.train import build_runner, configure, parse_args  # noqa: E402

NUM_ENVS = 128


def make_agent(train_dir: str, run: str, epochs: int, observer=None):
    args, overrides = parse_args([f"--num_envs={NUM_ENVS}", f"--max_iterations={epochs}"])
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
        hparams.write(member, values)
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
        cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), f"--num_envs={NUM_ENVS}", f"--checkpoint={path}",
               f"--max_iterations={donor.epoch_num + 1}", f"+agent.params.config.full_experiment_name=restart{i}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True)
        restart.append(time.perf_counter() - t0 - epoch)
    return {"in_place_s": statistics.median(in_place), "restart_s": statistics.median(restart), "epoch_s": epoch}


def bench_throughput(tmp: str, rounds: int, epochs: int) -> dict:
    frames = epochs * NUM_ENVS * 16
    shipped = configure(*parse_args([]))[2].interval_steps
    modes = {"off": None, f"on (interval {shipped} frames)": shipped, "on (tick every epoch)": NUM_ENVS * 16}
    fps: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for name, interval in modes.items():
            observer = None
            if interval is not None:
                cfg = PbtCfg.from_dict({"enabled": True, "num_policies": 1, "min_initialized": 1, "directory": tmp,
                                        "workspace": f"ws_{r}_{interval}", "interval_steps": interval,
                                        "objective": "episode.Curriculum/adr",
                                        "mutation": {"agent.params.config.learning_rate": "mutate_float"}})
                observer = lambda agent_cfg, cfg=cfg: PbtObserver(cfg, agent_cfg, seed=0)
            agent = make_agent(tmp, f"tp_{r}_{len(fps[name])}_{interval}", epochs, observer)
            t0 = time.perf_counter()
            agent.train()
            fps[name].append(frames / (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in fps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the throughput runs")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per throughput run")
    parser.add_argument("--repeats", type=int, default=30, help="in-place swaps timed (restarts: a tenth, at least 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as quiet:
        with contextlib.redirect_stdout(quiet):  # rl_games prints every epoch and checkpoint
            apply = bench_apply(tmp, args.repeats)
            fps = bench_throughput(tmp, args.rounds, args.epochs)
    print(f"\nembedded task, {NUM_ENVS} envs, 1 torch thread, {os.cpu_count()} CPUs")
    print(f"apply a replacement in place : {apply['in_place_s'] * 1e3:8.1f} ms (median)")
    print(f"apply it by restarting       : {apply['restart_s'] * 1e3:8.1f} ms (median, one epoch of {apply['epoch_s'] * 1e3:.0f} ms subtracted)")
    print(f"restart / in place           : {apply['restart_s'] / apply['in_place_s']:8.0f} x")
    base = fps["off"]
    for name, value in fps.items():
        print(f"throughput PBT {name:<26}: {value:9.0f} frames/s  ({value / base:.3f} of PBT off)")


if __name__ == "__main__":
    main()
