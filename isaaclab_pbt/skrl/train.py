"""Train one skrl PPO agent, optionally as a PBT member: the logic behind ``scripts/skrl/train.py``.

The PBT flags, workspace and results tools are those of the rl_games and rsl_rl members; the agent
config is Isaac Lab's skrl layout (``seed``, ``models``, ``memory``, ``agent``, ``trainer``), so
whitelisted keys read ``agent.agent.learning_rate``. skrl's own ``Runner`` builds the models, the
memory, the agent and the trainer from it, and ``trainer.timesteps`` is ``max_iterations`` times
``agent.rollouts`` (as Isaac Lab's skrl ``train.py`` sets it). Runs are logged under
``logs/skrl/<agent.experiment.directory>/<run>``, relative to ``agent.pbt.directory`` for PBT
members; a PBT restart keeps its run folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import random
import sys
from typing import Any, Optional, Sequence

import yaml

from ..core import values
from ..core.agent_config import apply_overrides, parse_command_line
from ..core.config import PbtCfg, check_pbt_use
from ..core.errors import ArgumentParser, UsageError, command_line
from ..isaaclab.envs import add_app_launcher_args
from ..tasks import CONFIG_DIR
from . import learner as live
from .learner import SkrlLearner
from .runner import build_learner, start_run

log = logging.getLogger("isaaclab_pbt")

#: Embedded task id to its shipped skrl agent config.
AGENTS = {
    "PointReach-v0": os.path.join(CONFIG_DIR, "point_reach_skrl_ppo.yaml"),
    "PuckPush-v0": os.path.join(CONFIG_DIR, "puck_push_skrl_ppo.yaml"),
}
#: ``agent:`` keys skrl's Runner reads besides ``PPO_CFG``'s fields (it renames or drops them).
_RUNNER_KEYS = {"class", "lambda", "clip_predicted_values", "rewards_shaper_scale", "random_timesteps", "learning_starts",
                "shared_state_preprocessor", "shared_state_preprocessor_kwargs"}
#: The classes skrl's Runner may ``eval`` from these ``agent:`` strings (nothing else runs from a config).
_CLASSES = {"learning_rate_scheduler": {"KLAdaptiveLR"}, "observation_preprocessor": {"RunningStandardScaler"},
            "state_preprocessor": {"RunningStandardScaler"}, "value_preprocessor": {"RunningStandardScaler"}}


def build_parser(app_launcher: bool = False) -> ArgumentParser:
    """The flags of Isaac Lab's skrl ``train.py``; with ``app_launcher``, also Isaac Lab's AppLauncher flags."""
    p = ArgumentParser(description="Train an skrl PPO agent. Add agent.pbt.enabled=True agent.pbt.policy_idx=<n> ... to run it as a PBT member.",
                       epilog="Other arguments are key=value overrides, e.g. agent.agent.learning_rate=1e-3.",
                       allow_abbrev=False, conflict_handler="resolve")
    if app_launcher:
        add_app_launcher_args(p)
    p.add_argument("--task", default="PointReach-v0",
                   help=f"an embedded task ({', '.join(AGENTS)}) or an Isaac Lab task such as Isaac-Cartpole")
    p.add_argument("--agent", default=None,
                   help="embedded task: an skrl agent config YAML; Isaac Lab task: the registry key of its agent config "
                        "(default: skrl_cfg_entry_point)")
    p.add_argument("--num_envs", type=int, default=None, help="number of parallel environments")
    p.add_argument("--seed", type=int, default=None, help="training seed; -1 draws one")
    p.add_argument("--max_iterations", type=int, default=None, help="number of PPO updates (trainer.timesteps = this x agent.rollouts)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--checkpoint", default=None, help="an skrl checkpoint (.pt) to continue from (loaded safely)")
    p.add_argument("--headless", action="store_true", help="run without a viewer (the embedded tasks never render)")
    return p


def check_agent_section(agent: dict) -> None:
    """Refuse an ``agent:`` key that skrl's PPO does not know, and class names skrl's Runner would ``eval`` but are not skrl's.

    skrl would end in a ``TypeError`` deep inside its ``Runner`` for the first, and run any Python
    expression for the second.
    """
    from skrl.agents.torch.ppo import PPO_CFG

    known = {f.name for f in dataclasses.fields(PPO_CFG)} | _RUNNER_KEYS
    for key in agent:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            raise UsageError(f"agent.agent.{key}: not a setting of skrl's PPO{f'; did you mean agent.agent.{hint[0]}?' if hint else ''}")
    if str(agent.get("class", "")).lower() != "ppo":
        raise UsageError(f"agent.agent.class: the skrl backend trains PPO, got {agent.get('class')!r}")
    for key, allowed in _CLASSES.items():
        value = agent.get(key)
        if value is not None and value not in allowed:
            raise UsageError(f"agent.agent.{key}: must be one of {', '.join(sorted(allowed))} or null, got {value!r}")


def parse_args(argv: Sequence[str]) -> tuple[Any, list[str]]:
    """Known flags, and the ``key=value`` overrides; anything else is an error naming the token."""
    return parse_command_line(argv, build_parser, AGENTS, "agent.agent.discount_factor=0.99")


def check_layout(agent_cfg: Any, where: str) -> None:
    """An skrl agent config has ``models:``, ``memory:``, ``agent:`` and ``trainer:`` mappings."""
    if not isinstance(agent_cfg, dict) or not all(isinstance(agent_cfg.get(k), dict) for k in ("models", "memory", "agent", "trainer")):
        raise UsageError(f"--agent: {where} is not an skrl agent config (it needs 'models:', 'memory:', 'agent:' and 'trainer:' mappings)")


def settle(args: Any, overrides: Sequence[str], agent_cfg: dict, env_cfg: Any) -> PbtCfg:
    """Apply overrides and flags to the agent config and validate it; the PBT settings.

    ``env_cfg`` is the embedded task's dict (``env.*`` overrides applied here) or Isaac Lab's env
    configclass (its overrides went to Isaac Lab).
    """
    block = agent_cfg.get("pbt") or {}
    agent_cfg["pbt"] = {**PbtCfg.defaults(), "mutation": live.default_mutation(agent_cfg["agent"]), **block}
    agent_cfg.setdefault("max_iterations", max(1, int(agent_cfg["trainer"].get("timesteps", 1600)) // int(agent_cfg["agent"].get("rollouts", 16))))
    apply_overrides({"agent": agent_cfg, **({"env": env_cfg} if isinstance(env_cfg, dict) else {})}, overrides)
    for flag in ("num_envs", "max_iterations", "device"):
        if getattr(args, flag) is not None:
            agent_cfg[flag] = getattr(args, flag)
    if args.seed is not None:
        agent_cfg["seed"] = random.randint(0, 10_000) if args.seed == -1 else args.seed
    values.check(agent_cfg["agent"], values.SKRL, "agent.agent")
    values.check(agent_cfg, {"num_envs": values.AT_LEAST_ONE, "max_iterations": values.AT_LEAST_ONE}, "agent")
    check_agent_section(agent_cfg["agent"])
    pbt = PbtCfg.from_agent_cfg(agent_cfg, env_cfg)
    check_pbt_use(pbt, overrides, live.is_live, modes=("processes", "shared"))
    lr = live.PREFIX + "learning_rate"
    if pbt.enabled and lr in pbt.mutation and agent_cfg["agent"].get("learning_rate_scheduler") == "KLAdaptiveLR":
        raise UsageError(f"agent.pbt.mutation.{lr}: the KLAdaptiveLR scheduler rewrites the learning rate after every "
                         f"update; mutate {live.PREFIX}learning_rate_scheduler_kwargs.kl_threshold instead, "
                         "or set agent.agent.learning_rate_scheduler=null")
    if args.checkpoint and not os.path.isfile(args.checkpoint) and not pbt.one_process:  # shared: the workspace
        raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: no such file")
    return pbt


def configure(argv: Sequence[str]) -> tuple[Any, dict, PbtCfg]:
    """Embedded task: flags, the agent config with overrides and flags applied, and the validated PBT settings."""
    args, rest = parse_args(argv)
    if args.task not in AGENTS:
        raise UsageError(f"--task: '{args.task}' is not an embedded task ({', '.join(AGENTS)})")
    path = args.agent or AGENTS[args.task]
    try:
        with open(path, encoding="utf-8") as f:
            agent_cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"--agent: cannot read agent config {path}: {e}") from None
    check_layout(agent_cfg, path)
    agent_cfg.setdefault("num_envs", 64)
    pbt = settle(args, rest, agent_cfg, agent_cfg.setdefault("env", {}))
    return args, agent_cfg, pbt


def apply_config(agent: Any, section: dict) -> None:
    """Put the config's learning rate and KL threshold back after a checkpoint's optimiser and scheduler were loaded.

    A PBT restart passes its new values as overrides and a resumed run may change them on the
    command line; the optimiser and scheduler states in the checkpoint would otherwise bring back
    the old ones.
    """
    values_now = {}
    if isinstance(section.get("learning_rate"), (int, float)):
        values_now[live.PREFIX + "learning_rate"] = section["learning_rate"]
    threshold = (section.get("learning_rate_scheduler_kwargs") or {}).get("kl_threshold")
    if isinstance(threshold, (int, float)):
        values_now[live.PREFIX + "learning_rate_scheduler_kwargs.kl_threshold"] = threshold
    live.write(agent, values_now)


def train(argv: Sequence[str], command: Optional[Sequence[str]] = None) -> SkrlLearner:
    """Train as the command line says; returns the learner (its agent, its frame count)."""
    args, rest = parse_args(argv)
    if args.task not in AGENTS:
        return train_isaaclab(args, rest, command)
    from .env import make_embedded

    args, agent_cfg, pbt = configure(argv)
    if pbt.enabled and pbt.mode == "shared":
        from .shared import train_shared

        return train_shared(args, agent_cfg, pbt, command)
    folder = start_run(agent_cfg, pbt, args, agent_cfg["env"])
    env = make_embedded(args.task, int(agent_cfg["num_envs"]), agent_cfg["env"], str(agent_cfg.get("device", "cpu")),
                        agent_cfg.get("seed"))
    return train_learner(args, agent_cfg, pbt, env, folder, command, agent_cfg["env"])


def train_isaaclab(args: Any, overrides: Sequence[str], command: Optional[Sequence[str]]) -> SkrlLearner:
    """Train on an Isaac Lab task (2.3 or 3.0) with skrl's Isaac Lab wrapper, as Isaac Lab's skrl ``train.py`` does."""
    from ..isaaclab.envs import isaaclab_task, split_env_overrides

    env_tokens, agent_tokens = split_env_overrides(overrides)
    with isaaclab_task(args.task, args.agent or "skrl_cfg_entry_point", env_tokens, args) as (env_cfg, agent_cfg, make_env):
        check_layout(agent_cfg, f"the {args.agent or 'skrl_cfg_entry_point'} of {args.task}")
        agent_cfg = dict(agent_cfg)
        agent_cfg["num_envs"] = int(env_cfg.scene.num_envs)
        if args.device is None:
            args.device = str(env_cfg.sim.device)
        pbt = settle(args, agent_tokens, agent_cfg, env_cfg)
        env_cfg.scene.num_envs = int(agent_cfg["num_envs"])
        env_cfg.seed = agent_cfg.get("seed", 42)
        if pbt.enabled and pbt.mode == "shared":
            return train_isaaclab_shared(args, agent_cfg, env_cfg, pbt, command, make_env)
        folder = start_run(agent_cfg, pbt, args, env_cfg)
        env = make_env(env_cfg)
        try:
            from .isaaclab_env import wrap_isaaclab

            return train_learner(args, agent_cfg, pbt, wrap_isaaclab(env), folder, command, env_cfg)
        finally:
            env.close()


def train_isaaclab_shared(args: Any, agent_cfg: dict, env_cfg: Any, pbt: PbtCfg, command: Optional[Sequence[str]],
                          make_env: Any) -> list[SkrlLearner]:
    """The whole population in this process on one Isaac Lab env of ``num_policies x num_envs`` envs."""
    from ..isaaclab.envs import check_one_process
    from .isaaclab_env import SharedIsaacLabSkrlEnv
    from .shared import train_shared

    check_one_process(args, pbt, live.is_live)
    env_cfg.scene.num_envs = int(agent_cfg["num_envs"]) * pbt.num_policies
    env = SharedIsaacLabSkrlEnv(make_env(env_cfg), pbt.num_policies, pbt.objective)
    try:
        return train_shared(args, agent_cfg, pbt, command, env=env, env_cfg=env_cfg)
    finally:
        env.close()


def train_learner(args: Any, agent_cfg: dict, pbt: PbtCfg, env: Any, folder: str, command: Optional[Sequence[str]],
                  env_cfg: Any) -> SkrlLearner:
    """Build skrl's runner on ``env``, load ``--checkpoint``, join the population and run skrl's trainer."""
    from ..core.member import Member

    runner, learner = build_learner(agent_cfg, env, folder, args.checkpoint)
    member = None
    if pbt.enabled:
        member = Member(pbt, learner, pbt.start_values(agent_cfg, env_cfg), int(agent_cfg.get("seed", 42)), argv=command)
    learner.attach(member)
    if args.checkpoint:
        apply_config(runner.agent, agent_cfg["agent"])
    try:
        if learner.max_iterations - learner.done_iterations > 0:
            runner.run("train")
    finally:
        if member is not None:
            member.finish()
    return learner


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The command line: bad input ends in one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    logging.getLogger("skrl").propagate = False  # skrl prints its own lines
    argv = list(sys.argv[1:] if argv is None else argv)
    command = list(getattr(sys, "orig_argv", [sys.executable, sys.argv[0]]))[1:]
    command_line("train", lambda: train(argv, command))


if __name__ == "__main__":  # python -m isaaclab_pbt.skrl.train (an installed wheel has no scripts/)
    main()
