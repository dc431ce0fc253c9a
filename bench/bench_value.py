"""Does PBT make the population better? The same population under four strategies, side by side.

Every condition trains the same members (same seeds, same initial hyperparameters: a log-spread of
learning rates with two entropy and discount settings, the same frame budget), one
``scripts/train.py`` process per member, conditions and seeds run one after another:

  (a) ``no_pbt``     each member trains alone;
  (b) ``random``     random search: every member's values are drawn once at launch, no exploit;
  (c) ``seed``       the seed's rules with their defaults (the spec's cuts, the donor's values);
  (d) ``dexpbt+``    the strongest recipe: DexPBT's fractions, gap test, noise guard and launch
                     mutation, Ray's resampling, 50/50 donor/own values, ranking at equal frames.

All four publish a record every interval through the same PBT tick (in (a) and (b) thresholds no
objective can cross make every member a "middle" one), so every condition is measured by the
same code at the same frames. Per condition it prints the final best and mean objective of the
population (median and range over seeds), the frames the population's best needs to reach the
target, and the replacements; it writes ``value.png`` (population best against frames) and
``value.json`` (every number) to ``--out``.

    python bench/bench_value.py [--seeds 0 1 2] [--members 4] [--epochs 250] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from isaaclab_pbt.core.workspace import Workspace  # noqa: E402

P = "agent.params.config."
#: Initial hyperparameters of member i (cycled): learning rates a decade apart end to end, two
#: entropy settings and two discounts, so that the population starts spread as a user would spread it.
START = [
    {"learning_rate": 1e-4, "entropy_coef": 0.0, "gamma": 0.99},
    {"learning_rate": 3e-4, "entropy_coef": 0.01, "gamma": 0.95},
    {"learning_rate": 1e-3, "entropy_coef": 0.0, "gamma": 0.95},
    {"learning_rate": 3e-3, "entropy_coef": 0.01, "gamma": 0.99},
    {"learning_rate": 2e-4, "entropy_coef": 0.003, "gamma": 0.97},
    {"learning_rate": 6e-4, "entropy_coef": 0.0, "gamma": 0.99},
    {"learning_rate": 2e-3, "entropy_coef": 0.003, "gamma": 0.9},
    {"learning_rate": 5e-5, "entropy_coef": 0.01, "gamma": 0.97},
]
NO_EXPLOIT = ["agent.pbt.threshold_abs=1e9"]  # no member leads or lags by a billion: ticks publish only
BOUNDS = [f"+agent.pbt.bounds.{P}learning_rate=[1e-5,1e-2]", f"+agent.pbt.bounds.{P}entropy_coef=[0.0,0.03]",
          f"+agent.pbt.bounds.{P}gamma=[0.9,0.999]", f"+agent.pbt.bounds.{P}tau=[0.8,0.99]"]
CONDITIONS = {
    "no_pbt": NO_EXPLOIT,
    "random": NO_EXPLOIT + ["agent.pbt.diversify=True", "agent.pbt.resample_probability=1.0", *BOUNDS],
    "seed": [],
    "dexpbt+": ["agent.pbt.selection=fractions", "agent.pbt.noise_guard=True", "agent.pbt.compare=equal_frames",
                "agent.pbt.hyperparameters_from=either", "agent.pbt.diversify=True", "agent.pbt.resample_probability=0.25",
                *BOUNDS],
}


def member_argv(condition: str, seed: int, idx: int, n: int, folder: str, args: argparse.Namespace) -> list[str]:
    hp = START[idx % len(START)]
    return [
        os.path.join(ROOT, "scripts", "train.py"), f"--task={args.task}", "--headless", f"--seed={1000 * seed + idx}",
        f"--max_iterations={args.epochs}", f"--device={args.device}", *([f"--num_envs={args.num_envs}"] if args.num_envs else []),
        "agent.pbt.enabled=True", f"agent.pbt.num_policies={n}", f"agent.pbt.policy_idx={idx}",
        f"agent.pbt.directory={folder}", "agent.pbt.workspace=ws", "agent.pbt.keep_checkpoints=2",
        *(f"{P}{k}={v!r}" for k, v in hp.items()), *CONDITIONS[condition], *args.extra,
    ]


def run_condition(condition: str, seed: int, args: argparse.Namespace) -> dict:
    folder = os.path.join(args.out, condition, f"seed{seed}")
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=ROOT)
    t0 = time.monotonic()
    procs = []
    for i in range(args.members):
        log = open(os.path.join(folder, f"member{i}.log"), "wb")
        procs.append(subprocess.Popen([sys.executable, *member_argv(condition, seed, i, args.members, folder, args)],
                                      stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"bench_value: {condition} seed {seed}: exit codes {codes}; see {folder}/member*.log")
    return summarise(Workspace(os.path.join(folder, "ws")), args.members, time.monotonic() - t0)


def summarise(ws: Workspace, members: int, wall: float) -> dict:
    """Per PBT iteration: the population's best and mean objective, from every member's history."""
    by_iteration: dict[int, dict[int, tuple[int, float]]] = {}
    for idx in range(members):
        for r in ws.history(idx):
            if r.objective is not None:
                by_iteration.setdefault(r.iteration, {})[idx] = (r.frame, r.objective)
    curve = []
    for it in sorted(by_iteration):
        values = by_iteration[it]
        if len(values) == members:  # every member reported this iteration
            objectives = [o for _, o in values.values()]
            curve.append({"frame": min(f for f, _ in values.values()), "best": max(objectives), "mean": statistics.fmean(objectives)})
    events = [e.get("event") for idx in range(members) for e in ws.lineage(idx)]
    return {"curve": curve, "replaced": events.count("replaced"), "mutated": events.count("mutated"), "wall_s": wall}


def frames_to(curve: list[dict], target: float) -> float:
    return next((p["frame"] for p in curve if p["best"] >= target), math.inf)


def plot(results: dict, target: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    styles = {"no_pbt": ("black", "--"), "random": ("tab:orange", "-"), "seed": ("tab:blue", "-"), "dexpbt+": ("tab:green", "-")}
    for condition, runs in results.items():
        color, style = styles[condition]
        frames = sorted({p["frame"] for run in runs.values() for p in run["curve"]})
        rows = []
        for f in frames:
            values = [next((p["best"] for p in reversed(run["curve"]) if p["frame"] <= f), math.nan) for run in runs.values()]
            rows.append(values)
        med = [statistics.median(v) for v in rows]
        ax.plot(frames, med, color=color, ls=style, lw=1.6, label=f"({'abcd'[list(CONDITIONS).index(condition)]}) {condition}")
        ax.fill_between(frames, [min(v) for v in rows], [max(v) for v in rows], color=color, alpha=0.15)
    ax.axhline(target, color="gray", lw=0.8, ls=":", label=f"target {target:.3g}")
    ax.set_xlabel("frames per member")
    ax.set_ylabel("population best objective (Curriculum/adr)")
    ax.set_title("Population best: median over seeds, band = min..max")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="PuckPush-v0")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--epochs", type=int, default=250, help="training epochs per member (the frame budget)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num_envs", type=int, default=None, help="default: the task's agent config")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    p.add_argument("--target", type=float, default=None,
                   help="objective the population's best must reach (default: 90%% of (a)'s median final best)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "bench_value"))
    p.add_argument("extra", nargs="*", help="more overrides for every member, e.g. agent.pbt.interval_steps=40960")
    args = p.parse_args()

    results: dict[str, dict[int, dict]] = {c: {} for c in args.conditions}
    for condition in args.conditions:
        for seed in args.seeds:
            run = run_condition(condition, seed, args)
            results[condition][seed] = run
            last = run["curve"][-1] if run["curve"] else {"best": math.nan, "mean": math.nan, "frame": 0}
            print(f"{condition:8s} seed {seed}: final best {last['best']:.4f} mean {last['mean']:.4f} at frame {last['frame']:,}; "
                  f"{run['replaced']} replaced, {run['mutated']} mutated; {run['wall_s']:.0f} s", flush=True)

    finals = {c: [r["curve"][-1]["best"] for r in runs.values() if r["curve"]] for c, runs in results.items()}
    target = args.target
    if target is None:
        target = 0.9 * statistics.median(finals.get("no_pbt") or next(iter(finals.values())))
    print(f"\ntarget: {target:.4f}\n")
    header = f"{'condition':10s} {'final best':>22s} {'final mean':>22s} {'frames to target':>30s} {'replaced':>9s} {'mutated':>8s}"
    print(header)
    table = {}
    for condition, runs in results.items():
        best = [r["curve"][-1]["best"] for r in runs.values()]
        mean = [r["curve"][-1]["mean"] for r in runs.values()]
        reach = [frames_to(r["curve"], target) for r in runs.values()]
        table[condition] = {"final_best": best, "final_mean": mean, "frames_to_target": reach,
                            "replaced": [r["replaced"] for r in runs.values()], "mutated": [r["mutated"] for r in runs.values()]}
        fmt = lambda v: f"{statistics.median(v):.4f} [{min(v):.4f}, {max(v):.4f}]"
        reach_txt = f"{statistics.median(reach):,.0f} [{min(reach):,.0f}, {max(reach):,.0f}]".replace("inf", "never")
        print(f"{condition:10s} {fmt(best):>22s} {fmt(mean):>22s} {reach_txt:>30s} "
              f"{statistics.fmean(table[condition]['replaced']):9.1f} {statistics.fmean(table[condition]['mutated']):8.1f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "value.json"), "w") as f:
        json.dump({"target": target, "table": table, "runs": results, "argv": sys.argv[1:]}, f, indent=1, default=str)
    plot(results, target, os.path.join(args.out, "value.png"))
    print(f"\nwrote {args.out}/value.json and value.png")


if __name__ == "__main__":
    main()
