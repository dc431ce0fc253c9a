"""Train one rl_games agent, optionally as a PBT member: the logic behind ``scripts/train.py``.

The flags are those of Isaac Lab's rl_games ``train.py``; every other ``key=value`` token is a
Hydra-style override of the env or agent config (``agent.pbt.enabled=True``). Runs are logged under
``logs/rl_games/<config name>/<run>``, relative to ``agent.pbt.directory`` for PBT members, and each
run folder gets ``params/agent.yaml``, ``params/env.yaml`` and ``params/command.yaml`` so a run (or
a PBT restart) can be inspected and repeated.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import pickle
import random
import sys
from typing import Any, Callable, Optional, Sequence

from ..core import agent_config, values
from ..core.agent_config import apply_overrides, get_override, parse_command_line
from ..core.config import PbtCfg, check_pbt_use
from ..core.errors import ArgumentParser, UsageError, command_line
from ..core.member import diversify
from ..isaaclab.envs import add_app_launcher_args
from ..tasks import EMBEDDED_TASK, EMBEDDED_TASKS
from .learner import PREFIX, is_live
from .runner import build_runner, start_run

log = logging.getLogger("isaaclab_pbt")


def build_parser(app_launcher: bool = False) -> argparse.ArgumentParser:
    """The flags of Isaac Lab's rl_games ``train.py``; with ``app_launcher``, also Isaac Lab's AppLauncher flags.

    ``--device`` keeps this script's meaning (default: the agent config's device) rather than
    AppLauncher's default of ``cuda:0``, so a CPU machine trains without extra flags.
    """
    p = ArgumentParser(
        description="Train an rl_games agent. Add agent.pbt.enabled=True agent.pbt.policy_idx=<n> ... to run it as a PBT member.",
        epilog="Other arguments are key=value overrides of the env and agent configs, e.g. agent.params.config.learning_rate=1e-3.",
        allow_abbrev=False,  # a typo must not silently become another flag
        conflict_handler="resolve",  # AppLauncher defines --headless and --device too: ours, added after, win
    )
    if app_launcher:
        add_app_launcher_args(p)
    p.add_argument("--task", default=EMBEDDED_TASK,
                   help=f"task id: the embedded {EMBEDDED_TASK} (default) or an Isaac Lab task such as Isaac-Lift-KukaAllegro")
    p.add_argument("--agent", default=None,
                   help="embedded task: an agent config YAML; Isaac Lab task: the registry key of its agent config "
                        "(default: rl_games_cfg_entry_point; ours is also under rl_games_pbt_cfg_entry_point)")
    p.add_argument("--num_envs", type=int, default=None, help="number of parallel environments")
    p.add_argument("--seed", type=int, default=None, help="training seed; -1 draws one")
    p.add_argument("--headless", action="store_true", help="run without a viewer (the embedded task never has one)")
    p.add_argument("--checkpoint", default=None, help="rl_games checkpoint (.pth) to resume from")
    p.add_argument("--max_iterations", type=int, default=None, help="number of training epochs")
    p.add_argument("--device", default=None, help="torch device for the agent and the env, e.g. cpu or cuda:0")
    p.add_argument("--track", action="store_true", help="log to Weights & Biases")
    p.add_argument("--wandb-project-name", default=None, help="wandb project (default: the config name)")
    p.add_argument("--wandb-entity", default=None, help="wandb entity (team or user)")
    p.add_argument("--wandb-name", default=None, help="wandb run name (default: the run folder name)")
    p.add_argument("--pbt_replay", default=None, metavar="SCHEDULE",
                   help="train one learner following a PBT schedule (schedule.yaml from 'python -m isaaclab_pbt export')")
    p.add_argument("--video", action="store_true", help="Isaac Lab tasks: record videos during training (to <run>/videos/train)")
    p.add_argument("--video_length", type=int, default=200, help="length of each recorded video, in steps")
    p.add_argument("--video_interval", type=int, default=2000, help="steps between the starts of two recordings")
    p.add_argument("--sigma", default=None, help="the policy's initial standard deviation (rl_games' sigma)")
    p.add_argument("--distributed", action="store_true",
                   help="train one learner on several GPUs (torchrun); a PBT member is one process on one device")
    p.add_argument("--export_io_descriptors", action="store_true",
                   help="Isaac Lab manager-based tasks: write the env's observation and action descriptors to the run folder")
    return p


def parse_args(argv: Sequence[str], build: Callable[[bool], argparse.ArgumentParser] = build_parser,
               ) -> tuple[argparse.Namespace, list[str]]:
    """Known flags, and the ``key=value`` overrides; anything else is an error naming the token.

    ``build(app_launcher)`` makes the parser; an Isaac Lab ``--task`` adds Isaac Lab's AppLauncher
    flags. With ``--pbt_replay``, the schedule's first values come before the user's overrides.
    """
    args, overrides = parse_command_line(argv, build, EMBEDDED_TASKS, "agent.params.config.gamma=0.99")
    if args.pbt_replay:
        from .replay import first_values_as_overrides, load_schedule

        args.schedule = load_schedule(args.pbt_replay)
        overrides = first_values_as_overrides(args.schedule) + overrides
    return args, overrides


def load_agent_cfg(args: argparse.Namespace) -> dict:
    """The embedded task's agent config (or the ``--agent`` YAML) as a plain dict."""
    return agent_config.load(args.agent or EMBEDDED_TASKS[args.task], "params", "rl_games")


def apply_settings(args: argparse.Namespace, overrides: Sequence[str], agent_cfg: dict, env_cfg: Any,
                   training: bool = True) -> PbtCfg:
    """Apply overrides (``env.*`` only when ``env_cfg`` is a dict) and flags to the agent config; validate PBT.

    ``training=False`` (play) reads the PBT block only to find the workspace: it needs no
    ``agent.pbt.enabled=True`` and writes nothing.

    ``env_cfg`` is the embedded task's env dict or Isaac Lab's env configclass (whose overrides
    Isaac Lab's Hydra applies); PBT reads whitelisted ``env.*`` keys from it.
    """
    params = agent_cfg["params"]
    cfg = params["config"]
    # every PBT field can be overridden, as with a structured config: fill in the ones the YAML omits
    if isinstance(agent_cfg.get("pbt", {}), dict):
        agent_cfg["pbt"] = {**PbtCfg.defaults(), **agent_cfg.get("pbt", {})}
    roots = {"agent": agent_cfg, **({"env": env_cfg} if isinstance(env_cfg, dict) else {})}
    apply_overrides(roots, overrides)
    if args.num_envs is not None and args.num_envs < 1:
        raise UsageError(f"--num_envs: must be at least 1, got {args.num_envs}")
    if args.num_envs is not None:
        # the minibatch was sized for the config's env count (an Isaac Lab task's default env count)
        configured = int(cfg["num_actors"]) if isinstance(env_cfg, dict) else int(env_cfg.scene.num_envs)
        size_minibatch(cfg, configured, args.num_envs, get_override(overrides, PREFIX + "minibatch_size") is not None)
        cfg["num_actors"] = args.num_envs
        if not isinstance(env_cfg, dict):
            env_cfg.scene.num_envs = args.num_envs
    if args.seed is not None:
        params["seed"] = random.randint(0, 10_000) if args.seed == -1 else args.seed
    if args.max_iterations is not None:
        cfg["max_epochs"] = args.max_iterations
    if args.device is not None:
        cfg["device"] = cfg["device_name"] = args.device
    if args.sigma is not None:
        try:
            args.sigma = float(args.sigma)
        except ValueError:
            raise UsageError(f"--sigma: must be a number (the policy's initial standard deviation), got '{args.sigma}'") from None
    if args.distributed:
        if isinstance(agent_cfg.get("pbt"), dict) and agent_cfg["pbt"].get("enabled") is True:
            raise UsageError("--distributed: a PBT member is one process on one device; "
                             "drop --distributed, or agent.pbt.enabled=True and train one learner on several GPUs")
        # as Isaac Lab's train.py: one process per GPU under torchrun, each with its own seed
        local_rank, rank = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("RANK", 0))
        cfg["device"] = cfg["device_name"] = f"cuda:{local_rank}"
        cfg["multi_gpu"] = True
        params["seed"] = params.get("seed", 42) + rank
    if "torch_compile" not in cfg and str(cfg.get("device", "cuda")).startswith("cpu"):
        cfg["torch_compile"] = False  # rl_games compiles by default: no gain on CPU, a minute of start-up
    values.check(cfg, values.RL_GAMES, PREFIX.rstrip("."))
    pbt = PbtCfg.from_agent_cfg(agent_cfg, env_cfg)
    if training:
        check_pbt_use(pbt, overrides, is_live, modes=("processes", "shared", "batched"))
    if args.track and importlib.util.find_spec("wandb") is None:
        raise UsageError("--track: wandb is not installed (pip install wandb)")
    if training and pbt.enabled and pbt.diversify and not args.checkpoint and not pbt.one_process:
        diversify(pbt, agent_cfg, env_cfg, params.get("seed", 42))  # mode shared: each member's own, in rl_games/shared.py
    return pbt


def check_checkpoint_flag(args: argparse.Namespace) -> None:
    """A ``--checkpoint`` that is not a file fails before the run folder is made (its content is checked when loaded)."""
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: no such file")


def size_minibatch(cfg: dict, configured_envs: int, num_envs: int, user_set: bool) -> None:
    """Keep the config's number of minibatches when the env count changes, and check the batch divides.

    A config tuned for 128 envs and a minibatch of 1024 gets a minibatch of 32768 at 4096 envs
    instead of 32 tiny (and on a GPU ten times slower) updates per epoch; a minibatch the user set
    on the command line is kept as given. Either way it must divide ``num_envs x horizon_length``.
    """
    horizon = int(cfg.get("horizon_length", 1))
    batch = num_envs * horizon
    if not user_set and "minibatch_size" in cfg and configured_envs > 0:
        scaled = int(cfg["minibatch_size"]) * num_envs / configured_envs
        if scaled.is_integer() and scaled >= 1 and batch % scaled == 0:
            cfg["minibatch_size"] = int(scaled)
    minibatch = int(cfg.get("minibatch_size") or num_envs * int(cfg.get("minibatch_size_per_env", 0)))
    if minibatch < 1 or batch % minibatch:
        divisors = [d for d in (batch // k for k in (1, 2, 4, 8, 16, 32)) if d * (batch // d) == batch]
        raise UsageError(f"agent.params.config.minibatch_size: {minibatch} does not divide the batch of {num_envs} envs "
                         f"x {horizon} steps = {batch}; use a divisor such as {', '.join(map(str, divisors[:4]))}")


def configure(args: argparse.Namespace, overrides: Sequence[str], training: bool = True) -> tuple[dict, dict, PbtCfg]:
    """Embedded task: agent config with overrides and flags applied, the env config, and the PBT settings."""
    agent_cfg = load_agent_cfg(args)
    cfg = agent_cfg["params"]["config"]
    # one dict: env.<key> and agent.params.config.env_config.<key> name the same setting
    env_cfg = cfg["env_config"] = dict(cfg.get("env_config") or {})
    pbt = apply_settings(args, overrides, agent_cfg, env_cfg, training)
    env_cfg["device"] = cfg.get("device", "cpu")
    return agent_cfg, env_cfg, pbt


def train_agent(args: argparse.Namespace, agent_cfg: dict, pbt: PbtCfg, command: list[str], env_cfg: Any = None) -> None:
    """Build the rl_games runner with the right observer and train, from ``--checkpoint`` if given.

    ``env_cfg``: Isaac Lab's env config, where whitelisted ``env.*`` keys live (the embedded tasks
    keep theirs in the agent config).
    """
    from rl_games.common.algo_observer import IsaacAlgoObserver

    from .observer import PbtObserver

    seed = agent_cfg["params"].get("seed", 42)
    if args.pbt_replay:
        from .replay import ReplayObserver, replay_log_path

        if pbt.enabled:
            raise UsageError("--pbt_replay: replays a schedule in one learner; drop agent.pbt.enabled=True")
        observer = ReplayObserver(args.schedule, replay_log_path(agent_cfg))
    elif pbt.enabled:
        observer = PbtObserver(pbt, agent_cfg, seed, argv=command, env_cfg=env_cfg)
    else:
        observer = IsaacAlgoObserver()
    runner = build_runner(agent_cfg, observer)
    restore = None
    if args.checkpoint:
        from . import checkpoint

        cfg = agent_cfg["params"]["config"]
        try:
            restore = checkpoint.safe_copy(args.checkpoint, os.path.join(cfg["train_dir"], cfg["full_experiment_name"], "nn"))
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
            raise UsageError(f"--checkpoint: cannot load {args.checkpoint} safely: {str(e).splitlines()[0]}") from None
    try:
        runner.run({"train": True, "play": False, "checkpoint": restore, "sigma": args.sigma})
    finally:
        if isinstance(observer, PbtObserver):
            observer.flush()  # rl_games has no end-of-training hook: the last record is on disk before we return


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The command line: bad input ends in one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line("train", lambda: train(argv))


def train(argv: Sequence[str]) -> None:
    """Parse ``argv`` (flags and overrides), set up the run folder and train; bad input raises :class:`UsageError`."""
    args, overrides = parse_args(argv)
    # the command as the interpreter saw it (with flags such as -u), reused verbatim by PBT restarts
    command = list(getattr(sys, "orig_argv", [sys.executable, sys.argv[0]]))[1:]
    if args.task not in EMBEDDED_TASKS:
        return train_isaaclab(args, overrides, command)
    for flag in ("video", "export_io_descriptors"):
        if getattr(args, flag):
            raise UsageError(f"--{flag}: only Isaac Lab tasks support it; the embedded {args.task} renders and describes nothing")
    agent_cfg, env_cfg, pbt = configure(args, overrides)
    if pbt.enabled and pbt.mode == "shared":  # its --checkpoint is the workspace
        from .shared import train_shared

        return train_shared(args, agent_cfg, env_cfg, pbt, command)
    if pbt.enabled and pbt.mode == "batched":
        from .batched import train_batched

        return train_batched(args, agent_cfg, env_cfg, pbt, command)
    check_checkpoint_flag(args)
    start_run(agent_cfg, pbt, command, env_cfg)
    if args.track:
        _init_wandb(args, agent_cfg, pbt)
    train_agent(args, agent_cfg, pbt, command)


def train_isaaclab(args: argparse.Namespace, overrides: Sequence[str], command: list[str]) -> None:
    """Train on an Isaac Lab task (2.3 or 3.0): ``env.*`` overrides go to Isaac Lab's Hydra, the rest are ours."""
    from ..isaaclab.envs import isaaclab_task, split_env_overrides
    from .isaaclab_env import register_rl_games_env

    env_tokens, agent_tokens = split_env_overrides(overrides)
    agent_entry = args.agent or "rl_games_cfg_entry_point"
    with isaaclab_task(args.task, agent_entry, env_tokens, args) as (env_cfg, agent_cfg, make_env):
        pbt = apply_settings(args, agent_tokens, agent_cfg, env_cfg)
        env_cfg.seed = agent_cfg["params"]["seed"]
        if args.export_io_descriptors and not hasattr(env_cfg, "export_io_descriptors"):
            raise UsageError(f"--export_io_descriptors: {args.task} is not a manager-based env; it has no IO descriptors")
        if pbt.enabled and pbt.mode in ("shared", "batched"):
            return train_isaaclab_shared(args, agent_cfg, env_cfg, pbt, command, make_env)
        check_checkpoint_flag(args)
        start_run(agent_cfg, pbt, command, env_cfg)
        cfg = agent_cfg["params"]["config"]
        if args.export_io_descriptors:
            env_cfg.export_io_descriptors = True
            env_cfg.io_descriptors_output_dir = os.path.join(cfg["train_dir"], cfg["full_experiment_name"])
        if args.track:
            _init_wandb(args, agent_cfg, pbt)
        env = make_env(env_cfg, render_mode="rgb_array" if args.video else None)
        try:
            if args.video:
                import gymnasium as gym

                env = gym.wrappers.RecordVideo(
                    env, video_folder=os.path.join(cfg["train_dir"], cfg["full_experiment_name"], "videos", "train"),
                    step_trigger=lambda step: step % args.video_interval == 0, video_length=args.video_length, disable_logger=True)
            register_rl_games_env(env, agent_cfg)
            agent_cfg["params"]["config"]["num_actors"] = env.unwrapped.num_envs
            train_agent(args, agent_cfg, pbt, command, env_cfg)
        finally:
            env.close()


def train_isaaclab_shared(args: argparse.Namespace, agent_cfg: dict, env_cfg: Any, pbt: PbtCfg, command: list[str],
                          make_env: Callable[..., Any]) -> None:
    """The whole population in this process on one Isaac Lab env of ``num_policies x num_envs`` envs (shared or batched mode)."""
    from ..isaaclab.envs import check_one_process
    from . import batched, learner
    from .isaaclab_env import SharedIsaacLabEnv
    from .shared import train_shared

    check_one_process(args, pbt, batched.is_live if pbt.mode == "batched" else learner.is_live)
    per = int(env_cfg.scene.num_envs)
    env_cfg.scene.num_envs = per * pbt.num_policies
    env = make_env(env_cfg)
    try:
        agent_cfg["params"]["config"]["num_actors"] = per
        train = batched.train_batched if pbt.mode == "batched" else train_shared
        train(args, agent_cfg, env_cfg, pbt, command, env=SharedIsaacLabEnv(env, agent_cfg, pbt.num_policies, pbt.objective))
    finally:
        env.close()


def _init_wandb(args: argparse.Namespace, agent_cfg: dict, pbt: PbtCfg) -> None:
    """One wandb run per run folder, resumed across PBT restarts; a population's members share one group.

    Charts are drawn against the TensorBoard frame counter (``global_step``), which a restarted
    member continues, rather than wandb's own ``_step``, which a new process (or an offline run)
    starts again at 0.
    """
    import wandb

    cfg = agent_cfg["params"]["config"]
    run = cfg["full_experiment_name"]
    wandb.init(
        project=args.wandb_project_name or cfg["name"],
        entity=args.wandb_entity,
        name=args.wandb_name or run,
        group=pbt.workspace if pbt.enabled else None,
        id=run.replace(":", "-"),
        resume="allow",
        dir=os.path.join(cfg["train_dir"], run),
        config={"agent": agent_cfg, "pbt": vars(pbt)},
        sync_tensorboard=True,
    )
    wandb.define_metric("*", step_metric="global_step")
