"""Train one rsl_rl learner, optionally as a PBT member: the logic behind ``scripts/rsl_rl/train.py``.

The PBT flags, workspace and results tools are those of the rl_games members; the agent config is
rsl_rl's (``algorithm:``, ``actor:``, ``critic:``), so whitelisted keys read
``agent.algorithm.learning_rate``. Two kinds of task:

* an embedded task (``PointReach-v0``, ``PuckPush-v0``): the agent config is our YAML;
* an Isaac Lab task (``--task=Isaac-Cartpole``): the agent config is the task's
  ``rsl_rl_cfg_entry_point`` (or ``--agent=<key>``, e.g. our ``rsl_rl_pbt_cfg_entry_point``),
  as Isaac Lab's rsl_rl ``train.py`` resolves it; ``env.*`` overrides go to Isaac Lab.

Runs are logged under ``logs/rsl_rl/<experiment_name>/<run>``, relative to ``agent.pbt.directory``
for PBT members; a PBT restart keeps its run folder.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import Any, Optional, Sequence

from ..core import agent_config, values
from ..core.agent_config import apply_overrides, parse_command_line
from ..core.config import PbtCfg, check_pbt_use
from ..core.errors import ArgumentParser, UsageError, command_line
from ..isaaclab.envs import add_app_launcher_args
from ..tasks import CONFIG_DIR
from .learner import PREFIX, RslRlLearner, default_mutation, is_live
from .runner import start_run

log = logging.getLogger("isaaclab_pbt")

#: Embedded task id to its shipped rsl_rl agent config.
AGENTS = {
    "PointReach-v0": os.path.join(CONFIG_DIR, "point_reach_rsl_rl_ppo.yaml"),
    "PuckPush-v0": os.path.join(CONFIG_DIR, "puck_push_rsl_rl_ppo.yaml"),
}


def build_parser(app_launcher: bool = False) -> ArgumentParser:
    """The flags of Isaac Lab's rsl_rl ``train.py``; with ``app_launcher``, also Isaac Lab's AppLauncher flags.

    ``--device`` keeps this script's meaning (default: the agent config's device), as under rl_games.
    """
    p = ArgumentParser(description="Train an rsl_rl agent. Add agent.pbt.enabled=True agent.pbt.policy_idx=<n> ... to run it as a PBT member.",
                       epilog="Other arguments are key=value overrides, e.g. agent.algorithm.learning_rate=1e-3.",
                       allow_abbrev=False, conflict_handler="resolve")
    if app_launcher:
        add_app_launcher_args(p)
    p.add_argument("--task", default="PointReach-v0",
                   help=f"an embedded task ({', '.join(AGENTS)}) or an Isaac Lab task such as Isaac-Cartpole")
    p.add_argument("--agent", default=None,
                   help="embedded task: an rsl_rl agent config YAML; Isaac Lab task: the registry key of its agent config "
                        "(default: rsl_rl_cfg_entry_point; ours is under rsl_rl_pbt_cfg_entry_point)")
    p.add_argument("--num_envs", type=int, default=None, help="number of parallel environments")
    p.add_argument("--seed", type=int, default=None, help="training seed; -1 draws one")
    p.add_argument("--max_iterations", type=int, default=None, help="number of training iterations")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--checkpoint", default=None, help="an rsl_rl checkpoint (.pt) to continue from (loaded safely)")
    p.add_argument("--headless", action="store_true", help="run without a viewer (the embedded tasks never render)")
    p.add_argument("--experiment_name", default=None, help="folder under logs/rsl_rl (default: the agent config's)")
    p.add_argument("--run_name", default=None, help="suffix of the run folder name")
    p.add_argument("--logger", default=None, choices=("tensorboard", "wandb", "neptune"), help="rsl_rl's logger")
    p.add_argument("--video", action="store_true", help="Isaac Lab tasks: record videos during training (to <run>/videos/train)")
    p.add_argument("--video_length", type=int, default=200, help="length of each recorded video, in steps")
    p.add_argument("--video_interval", type=int, default=2000, help="steps between the starts of two recordings")
    p.add_argument("--distributed", action="store_true",
                   help="train one learner on several GPUs (torchrun); a PBT member is one process on one device")
    return p


def parse_args(argv: Sequence[str]) -> tuple[Any, list[str]]:
    """Known flags, and the ``key=value`` overrides; anything else is an error naming the token."""
    return parse_command_line(argv, build_parser, AGENTS, "agent.algorithm.gamma=0.99")


def settle(args: Any, overrides: Sequence[str], agent_cfg: dict, env_cfg: Any) -> PbtCfg:
    """Apply overrides and flags to the agent config and validate it; the PBT settings.

    ``env_cfg`` is the embedded task's dict (``env.*`` overrides applied here) or Isaac Lab's env
    configclass (its overrides went to Isaac Lab; whitelisted ``env.*`` keys are read from it).
    """
    block = agent_cfg.get("pbt") or {}
    agent_cfg["pbt"] = {**PbtCfg.defaults(), "mutation": default_mutation(agent_cfg.get("algorithm", {})), **block}
    apply_overrides({"agent": agent_cfg, **({"env": env_cfg} if isinstance(env_cfg, dict) else {})}, overrides)
    for flag in ("num_envs", "max_iterations", "device", "experiment_name", "logger"):
        if getattr(args, flag) is not None:
            agent_cfg[flag] = getattr(args, flag)
    if args.seed is not None:
        agent_cfg["seed"] = random.randint(0, 10_000) if args.seed == -1 else args.seed
    if args.distributed:
        if agent_cfg["pbt"].get("enabled") is True:
            raise UsageError("--distributed: a PBT member is one process on one device; "
                             "drop --distributed, or agent.pbt.enabled=True and train one learner on several GPUs")
        local_rank, rank = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("RANK", 0))
        agent_cfg["device"] = f"cuda:{local_rank}"  # as Isaac Lab's train.py: one process per GPU, each its own seed
        agent_cfg["seed"] = int(agent_cfg.get("seed", 42)) + rank
    values.check(agent_cfg["algorithm"], values.RSL_RL, "agent.algorithm")
    values.check(agent_cfg, {"num_steps_per_env": values.AT_LEAST_ONE, "max_iterations": values.AT_LEAST_ONE}, "agent")
    pbt = PbtCfg.from_agent_cfg(agent_cfg, env_cfg)
    check_pbt_use(pbt, overrides, is_live)
    lr = PREFIX + "learning_rate"
    if pbt.enabled and lr in pbt.mutation and agent_cfg["algorithm"].get("schedule") == "adaptive":
        raise UsageError(f"agent.pbt.mutation.{lr}: the adaptive schedule (agent.algorithm.schedule=adaptive) rewrites "
                         f"the learning rate after every minibatch; mutate {PREFIX}desired_kl instead, "
                         "or set agent.algorithm.schedule=fixed")
    if args.checkpoint and not os.path.isfile(args.checkpoint) and not pbt.one_process:  # shared: the workspace
        raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: no such file")
    if pbt.enabled and pbt.diversify and not args.checkpoint and not pbt.one_process:  # fresh starts only; shared: per member
        from ..core.member import diversify

        diversify(pbt, agent_cfg, env_cfg, int(agent_cfg.get("seed", 42)))
    return pbt


def configure(argv: Sequence[str]) -> tuple[Any, dict, PbtCfg]:
    """Embedded task: flags, the agent config with overrides and flags applied, and the validated PBT settings."""
    args, rest = parse_args(argv)
    if args.task not in AGENTS:
        raise UsageError(f"--task: '{args.task}' is not an embedded task ({', '.join(AGENTS)})")
    if args.video:
        raise UsageError(f"--video: only Isaac Lab tasks support it; the embedded {args.task} renders nothing")
    agent_cfg = agent_config.load(args.agent or AGENTS[args.task], "algorithm", "rsl_rl")
    env_cfg = agent_cfg.setdefault("env", {})
    pbt = settle(args, rest, agent_cfg, env_cfg)
    values.check(agent_cfg, {"num_envs": values.AT_LEAST_ONE}, "agent")
    return args, agent_cfg, pbt


def train(argv: Sequence[str], command: Optional[Sequence[str]] = None) -> RslRlLearner:
    """Train as the command line says; returns the learner (its runner, its frame count)."""
    args, rest = parse_args(argv)
    if args.task not in AGENTS:
        return train_isaaclab(args, rest, command)
    args, agent_cfg, pbt = configure(argv)
    if pbt.enabled and pbt.mode == "shared":
        from .shared import train_shared

        return train_shared(args, agent_cfg, pbt, command)
    if pbt.enabled and pbt.mode == "batched":
        from .batched import train_batched

        return train_batched(args, agent_cfg, pbt, command)
    folder = start_run(args, agent_cfg, pbt, agent_cfg["env"])
    from .env import make_embedded

    env = make_embedded(args.task, int(agent_cfg["num_envs"]), agent_cfg["env"], str(agent_cfg.get("device", "cpu")),
                        agent_cfg.get("seed"))
    return train_learner(args, agent_cfg, pbt, env, folder, command, agent_cfg["env"])


def train_isaaclab(args: Any, overrides: Sequence[str], command: Optional[Sequence[str]]) -> RslRlLearner:
    """Train on an Isaac Lab task (2.3 or 3.0) with Isaac Lab's rsl_rl wrapper, as its rsl_rl ``train.py`` does."""
    from ..isaaclab.envs import isaaclab_task, split_env_overrides

    env_tokens, agent_tokens = split_env_overrides(overrides)
    with isaaclab_task(args.task, args.agent or "rsl_rl_cfg_entry_point", env_tokens, args) as (env_cfg, agent_obj, make_env):
        agent_cfg = runner_cfg_dict(agent_obj)
        if args.device is None:
            args.device = str(env_cfg.sim.device)  # the env's device (Isaac Lab's default, or --device)
        pbt = settle(args, agent_tokens, agent_cfg, env_cfg)
        if args.num_envs is not None:
            env_cfg.scene.num_envs = args.num_envs
        env_cfg.seed = agent_cfg.get("seed", 42)
        if pbt.enabled and pbt.one_process:
            return train_isaaclab_shared(args, agent_cfg, env_cfg, pbt, command, make_env)
        folder = start_run(args, agent_cfg, pbt, env_cfg)
        env = make_env(env_cfg, render_mode="rgb_array" if args.video else None)
        try:
            if args.video:
                import gymnasium as gym

                env = gym.wrappers.RecordVideo(env, video_folder=os.path.join(folder, "videos", "train"),
                                               step_trigger=lambda step: step % args.video_interval == 0,
                                               video_length=args.video_length, disable_logger=True)
            from .isaaclab_env import IsaacLabVecEnv

            wrapped = IsaacLabVecEnv(env, clip_actions=agent_cfg.get("clip_actions"))
            return train_learner(args, agent_cfg, pbt, wrapped, folder, command, env_cfg)
        finally:
            env.close()


def train_isaaclab_shared(args: Any, agent_cfg: dict, env_cfg: Any, pbt: PbtCfg, command: Optional[Sequence[str]],
                          make_env: Any) -> list[RslRlLearner]:
    """The whole population in this process on one Isaac Lab env of ``num_policies x num_envs`` envs (shared or batched mode)."""
    from ..isaaclab.envs import check_one_process
    from . import batched
    from .isaaclab_env import SharedIsaacLabVecEnv
    from .shared import train_shared

    check_one_process(args, pbt, batched.is_live if pbt.mode == "batched" else is_live)
    per = int(env_cfg.scene.num_envs)
    env_cfg.scene.num_envs = per * pbt.num_policies
    agent_cfg["num_envs"] = per
    env = SharedIsaacLabVecEnv(make_env(env_cfg), pbt.num_policies, agent_cfg.get("clip_actions"), pbt.objective)
    try:
        train = batched.train_batched if pbt.mode == "batched" else train_shared
        return train(args, agent_cfg, pbt, command, env=env, env_cfg=env_cfg)
    finally:
        env.close()


def runner_cfg_dict(agent_obj: Any) -> dict:
    """Isaac Lab's runner configclass as the dict rsl_rl reads (after Isaac Lab's own version fixes); a dict passes through."""
    if isinstance(agent_obj, dict):
        return dict(agent_obj)
    try:
        from isaaclab_rl.rsl_rl import check_rsl_rl_version, handle_deprecated_rsl_rl_cfg
    except ImportError:  # an Isaac Lab without these helpers: take the config as it is
        return agent_obj.to_dict()
    return handle_deprecated_rsl_rl_cfg(agent_obj, check_rsl_rl_version()).to_dict()


def train_learner(args: Any, agent_cfg: dict, pbt: PbtCfg, env: Any, folder: str,
                  command: Optional[Sequence[str]], env_cfg: Any) -> RslRlLearner:
    """Build the runner on ``env``, load ``--checkpoint``, join the population and run rsl_rl's ``learn()``."""
    import torch

    from ..core.member import Member
    from .runner import build_runner

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
        member = Member(pbt, learner, pbt.start_values(agent_cfg, env_cfg), int(agent_cfg.get("seed", 42)), argv=command)
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
