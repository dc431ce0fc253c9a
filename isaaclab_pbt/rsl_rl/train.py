"""Train one rsl_rl learner, optionally as a PBT member: the logic behind ``scripts/rsl_rl/train.py``.

The PBT flags, workspace and results tools are those of the rl_games members; the agent config is
rsl_rl's (``algorithm:``, ``actor:``, ``critic:``), so whitelisted keys read
``agent.algorithm.learning_rate``. Runs are logged under ``logs/rsl_rl/<experiment_name>/<run>``,
relative to ``agent.pbt.directory`` for PBT members; a PBT restart keeps its run folder.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from datetime import datetime
from typing import Any, Optional, Sequence

import yaml

from ..core import agent_config, values
from ..core.agent_config import apply_overrides, is_override
from ..core.config import PbtCfg, check_pbt_use
from ..core.errors import ArgumentParser, UsageError, command_line
from ..tasks import CONFIG_DIR
from .learner import RslRlLearner, is_live

log = logging.getLogger("isaaclab_pbt")

#: Embedded task id to its shipped rsl_rl agent config.
AGENTS = {
    "PointReach-v0": os.path.join(CONFIG_DIR, "point_reach_rsl_rl_ppo.yaml"),
    "PuckPush-v0": os.path.join(CONFIG_DIR, "puck_push_rsl_rl_ppo.yaml"),
}


def build_parser() -> ArgumentParser:
    """The flags of Isaac Lab's rsl_rl ``train.py`` that apply to the embedded tasks."""
    p = ArgumentParser(description="Train an rsl_rl agent. Add agent.pbt.enabled=True agent.pbt.policy_idx=<n> ... to run it as a PBT member.",
                       epilog="Other arguments are key=value overrides, e.g. agent.algorithm.learning_rate=1e-3.", allow_abbrev=False)
    p.add_argument("--task", default="PointReach-v0", help=f"an embedded task: {', '.join(AGENTS)}")
    p.add_argument("--agent", default=None, help="an rsl_rl agent config YAML (default: the task's shipped one)")
    p.add_argument("--num_envs", type=int, default=None, help="number of parallel environments")
    p.add_argument("--seed", type=int, default=None, help="training seed; -1 draws one")
    p.add_argument("--max_iterations", type=int, default=None, help="number of training iterations")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--checkpoint", default=None, help="an rsl_rl checkpoint (.pt) to continue from (loaded safely)")
    p.add_argument("--headless", action="store_true", help="accepted for Isaac Lab parity (the embedded tasks never render)")
    p.add_argument("--run_name", default=None, help="suffix of the run folder name")
    return p


def configure(argv: Sequence[str]) -> tuple[Any, dict, PbtCfg]:
    """Flags, the agent config with overrides and flags applied, and the validated PBT settings."""
    args, rest = build_parser().parse_known_args(list(argv))
    unknown = [t for t in rest if not is_override(t)]
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (overrides look like agent.algorithm.gamma=0.99)")
    if args.task not in AGENTS:
        raise UsageError(f"--task: the rsl_rl backend trains the embedded tasks {', '.join(AGENTS)}, got '{args.task}'")
    agent_cfg = agent_config.load(args.agent or AGENTS[args.task], "algorithm", "rsl_rl")
    agent_cfg["pbt"] = {**PbtCfg.defaults(), **(agent_cfg.get("pbt") or {})}
    env_cfg = agent_cfg.setdefault("env", {})
    apply_overrides({"agent": agent_cfg, "env": env_cfg}, rest)
    for flag, key in (("num_envs", "num_envs"), ("max_iterations", "max_iterations"), ("device", "device")):
        if getattr(args, flag) is not None:
            agent_cfg[key] = getattr(args, flag)
    if args.seed is not None:
        agent_cfg["seed"] = random.randint(0, 10_000) if args.seed == -1 else args.seed
    values.check(agent_cfg["algorithm"], values.RSL_RL, "agent.algorithm")
    values.check(agent_cfg, {"num_envs": values.AT_LEAST_ONE, "num_steps_per_env": values.AT_LEAST_ONE,
                             "max_iterations": values.AT_LEAST_ONE}, "agent")
    pbt = PbtCfg.from_agent_cfg(agent_cfg, env_cfg)
    check_pbt_use(pbt, rest, is_live)
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: no such file")
    return args, agent_cfg, pbt


def run_dir(args: Any, agent_cfg: dict, pbt: PbtCfg) -> str:
    """``logs/rsl_rl/<experiment>/<date>[_<run_name>][_pbt<idx>]``, or the folder a PBT restart continues in."""
    if agent_cfg.get("pbt_run_dir"):
        return str(agent_cfg["pbt_run_dir"])
    root = os.path.join(pbt.directory if pbt.enabled else ".", "logs", "rsl_rl", str(agent_cfg.get("experiment_name", "rsl_rl")))
    name = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    if args.run_name:
        name += f"_{args.run_name}"
    if pbt.enabled:
        name += f"_pbt{pbt.policy_idx:03d}"
    return os.path.abspath(os.path.join(root, name))


def train(argv: Sequence[str], command: Optional[Sequence[str]] = None) -> RslRlLearner:
    """Train as the command line says; returns the learner (its runner, its frame count)."""
    from ..core.member import Member
    from .env import make_embedded
    from .runner import build_runner

    args, agent_cfg, pbt = configure(argv)
    folder = run_dir(args, agent_cfg, pbt)
    os.makedirs(os.path.join(folder, "params"), exist_ok=True)
    with open(os.path.join(folder, "params", "agent.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(agent_cfg, f, sort_keys=False)
    log.info("run folder %s", folder)
    env = make_embedded(args.task, int(agent_cfg["num_envs"]), agent_cfg["env"], str(agent_cfg.get("device", "cpu")),
                        agent_cfg.get("seed"))
    import torch

    torch.manual_seed(int(agent_cfg.get("seed", 42)))
    runner = build_runner(agent_cfg, env, folder)
    learner = RslRlLearner(runner, int(agent_cfg["max_iterations"]), folder)
    if args.checkpoint:
        from . import state

        try:
            loaded = learner.load(args.checkpoint)
        except Exception as e:
            raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: {str(e).splitlines()[0]}") from None
        problem = state.misfit(runner, loaded)
        if problem:
            raise UsageError(f"--checkpoint: {args.checkpoint} does not fit this agent: {problem}")
        state.load_into(runner, loaded)
        learner.done_iterations = runner.current_learning_iteration = int(loaded.get("iter") or 0)
    member = None
    if pbt.enabled:
        member = Member(pbt, learner, pbt.start_values(agent_cfg, agent_cfg["env"]), int(agent_cfg.get("seed", 42)),
                        argv=command)
        learner.attach(member)
    try:
        left = learner.max_iterations - learner.done_iterations
        if left > 0:
            runner.learn(num_learning_iterations=left)
    finally:
        if member is not None:
            member.finish()
    return learner


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The command line: bad input ends in one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = list(getattr(sys, "orig_argv", [sys.executable, sys.argv[0]]))[1:]
    command_line("train", lambda: train(argv, command))


if __name__ == "__main__":  # python -m isaaclab_pbt.rsl_rl.train (an installed wheel has no scripts/)
    main()
