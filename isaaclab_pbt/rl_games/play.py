"""Evaluate a trained policy: the logic behind ``scripts/play.py``.

It takes the flags and overrides of ``scripts/train.py`` (so a training command becomes an
evaluation command by changing the script's name) and, without ``--checkpoint``, plays the
workspace's best member (``<agent.pbt.directory>/<agent.pbt.workspace>/best``). The policy acts
deterministically for ``--episodes`` finished episodes, and the result is printed as a table:
episodes, return, length, the PBT objective and every scalar of ``infos["episode"]`` (success
rates and curriculum levels among them). On Isaac Lab tasks ``--video`` records the first
``--video_length`` steps to ``<run>/videos/play`` the way Isaac Lab's own play script does.

Checkpoints are loaded with ``weights_only`` and handed to rl_games as a plain copy, so a file from
a shared folder cannot run code.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import pickle
import sys
import tempfile
from typing import Any, Callable, Optional, Sequence

from ..core.config import PbtCfg
from ..core.errors import ArgumentParser, UsageError, command_line
from ..core.objective import ObjectiveTracker, key_paths, lookup, to_float
from ..tasks import EMBEDDED_TASKS
from .runner import build_runner
from .train import build_parser as train_parser
from .train import configure, parse_args

log = logging.getLogger("isaaclab_pbt")


def build_parser(app_launcher: bool = False) -> argparse.ArgumentParser:
    """``scripts/train.py``'s flags (with AppLauncher's on Isaac Lab), plus what evaluating needs."""
    p = ArgumentParser(
        description="Evaluate an rl_games checkpoint (default: the PBT workspace's best member).",
        parents=[train_parser(app_launcher)], conflict_handler="resolve", allow_abbrev=False, add_help=False,
        epilog="Other arguments are key=value overrides, as for train.py (agent.pbt.directory=... agent.pbt.workspace=...).",
    )
    p.add_argument("-h", "--help", action="help", help="show this help message and exit")
    p.add_argument("--checkpoint", default=None, help="checkpoint (.pth) to play; default: the workspace's best member")
    p.add_argument("--episodes", type=int, default=100, help="finished episodes to evaluate over (default: 100)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean")
    return p


def best_checkpoint(pbt: PbtCfg) -> tuple[str, str]:
    """``(path, description)`` of the workspace's best member; a one-line error when there is none."""
    from ..core.workspace import Workspace

    best = Workspace(pbt.workspace_dir).best()
    if best is None:
        raise UsageError(f"--checkpoint: not given, and workspace '{pbt.workspace_dir}' has no best member yet "
                         "(set agent.pbt.directory and agent.pbt.workspace, or pass --checkpoint)")
    record, path = best
    return path, f"member {record.policy_idx:03d}, iteration {record.iteration}, frame {record.frame:,}, objective {record.objective:.4g}"


def evaluate(player: Any, episodes: int, objective: str, deterministic: bool = True,
             max_steps: int = 1_000_000) -> dict[str, Any]:
    """Step ``player.env`` with the player's actions until ``episodes`` episodes finished.

    Returns episode returns and lengths, the mean of the objective over all steps and the mean of
    every scalar of ``infos["episode"]``.
    """
    import torch

    env = player.env
    obs = player.env_reset(env)  # rl_games' own unpacking of dict observations and numpy results
    n = _batch(obs)
    returns = torch.zeros(n)
    lengths = torch.zeros(n, dtype=torch.long)
    done_returns: list[float] = []
    done_lengths: list[int] = []
    tracker = ObjectiveTracker(objective, warn_after=max_steps + 1)
    logged: dict[str, list[float]] = {}
    if player.is_rnn:
        player.init_rnn()
    steps = 0
    while len(done_returns) < episodes and steps < max_steps:
        actions = player.get_action(obs, is_deterministic=deterministic)
        obs, reward, done, infos = player.env_step(env, actions)
        steps += 1
        tracker.observe(infos)
        for key in key_paths((infos or {}).get("episode", {}), "episode"):
            value = to_float(lookup(infos, key))
            if value is not None:
                logged.setdefault(key, []).append(value)
        returns += torch.as_tensor(reward, dtype=torch.float32).cpu().reshape(n)
        lengths += 1
        finished = torch.as_tensor(done).cpu().reshape(n).bool().nonzero().flatten()
        for i in finished.tolist():
            done_returns.append(float(returns[i]))
            done_lengths.append(int(lengths[i]))
        returns[finished], lengths[finished] = 0.0, 0
        if player.is_rnn and finished.numel():
            for state in player.states:
                state[:, finished, :] = 0.0
    return {
        "episodes": len(done_returns),
        "steps": steps,
        "returns": done_returns,
        "lengths": done_lengths,
        "objective": tracker.value(),
        "logged": {k: math.fsum(v) / len(v) for k, v in sorted(logged.items())},
    }


def _batch(obs: Any) -> int:
    while isinstance(obs, dict):
        obs = next(iter(obs.values()))
    return int(obs.shape[0])


def render(result: dict[str, Any], objective: str, source: str) -> Any:
    """The evaluation as a rich table."""
    from rich.table import Table

    from ..results.status import console

    def mean_std(values: Sequence[float]) -> str:
        if not values:
            return "-"
        m = math.fsum(values) / len(values)
        s = math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))
        return f"{m:.4g} ± {s:.3g}"

    table = Table(title=f"Evaluation of {source}", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("episodes", f"{result['episodes']} ({result['steps']:,} steps)")
    table.add_row("return", mean_std(result["returns"]))
    table.add_row("length", mean_std(result["lengths"]))
    shown = "-" if result["objective"] is None else f"{result['objective']:.4g}"
    table.add_row(f"objective ({objective})", shown)
    for key, value in result["logged"].items():
        if key != objective:
            table.add_row(key, f"{value:.4g}")
    console().print(table)
    return table


def play(args: argparse.Namespace, agent_cfg: dict, pbt: PbtCfg, make_player: Callable[[dict], Any]) -> dict[str, Any]:
    """Restore the checkpoint into a player built by ``make_player(agent_cfg)``, evaluate and print."""
    from . import checkpoint

    path, source = (args.checkpoint, args.checkpoint) if args.checkpoint else best_checkpoint(pbt)
    with tempfile.TemporaryDirectory(prefix="isaaclab_pbt_play_") as tmp:
        try:
            restore = checkpoint.safe_copy(path, tmp)
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
            raise UsageError(f"--checkpoint: cannot load {path} safely: {str(e).splitlines()[0]}") from None
        cfg = agent_cfg["params"]["config"]
        cfg["player"] = {**(cfg.get("player") or {}), "use_vecenv": True, "deterministic": not args.stochastic,
                         "games_num": args.episodes, "print_stats": False}
        player = make_player(agent_cfg)
        player.restore(restore)
    player.has_batch_dimension = True
    result = evaluate(player, args.episodes, pbt.objective, deterministic=not args.stochastic)
    if result["episodes"] < args.episodes:
        log.warning("play: only %d of %d episodes finished within %d steps", result["episodes"], args.episodes, result["steps"])
    render(result, pbt.objective, source)
    return result


def _player(agent_cfg: dict) -> Any:
    from rl_games.common.algo_observer import IsaacAlgoObserver

    return build_runner(agent_cfg, IsaacAlgoObserver()).create_player()


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """The command line: bad input ends in one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    return command_line("play", lambda: play_command(argv))


def play_command(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``argv``, load the checkpoint (default: the workspace's best) and play; bad input raises :class:`UsageError`."""
    args, overrides = parse_args(argv, build_parser)
    if args.episodes < 1:
        raise UsageError(f"--episodes: must be at least 1, got {args.episodes}")
    if args.task not in EMBEDDED_TASKS:
        return play_isaaclab(args, overrides)
    if args.video:
        raise UsageError(f"--video: the embedded task {args.task} renders nothing; video needs an Isaac Lab task")
    agent_cfg, _, pbt = configure(args, overrides, training=False)
    cfg = agent_cfg["params"]["config"]
    if args.num_envs is None:
        cfg["num_actors"] = min(int(cfg["num_actors"]), args.episodes)
    return play(args, agent_cfg, pbt, _player)


def play_isaaclab(args: argparse.Namespace, overrides: Sequence[str]) -> dict[str, Any]:
    """Isaac Lab: the task's env (viewer unless ``--headless``, or ``--video``), the rl_games wrapper, the player."""
    from ..isaaclab.envs import isaaclab_task, split_env_overrides
    from .isaaclab_env import register_rl_games_env
    from .train import apply_settings

    env_tokens, agent_tokens = split_env_overrides(overrides)
    with isaaclab_task(args.task, args.agent or "rl_games_cfg_entry_point", env_tokens, args) as (env_cfg, agent_cfg, make_env):
        pbt = apply_settings(args, agent_tokens, agent_cfg, env_cfg, training=False)
        env = make_env(env_cfg, render_mode="rgb_array" if args.video else None)
        try:
            if args.video:
                import gymnasium as gym

                folder = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint or best_checkpoint(pbt)[0])), "videos", "play")
                env = gym.wrappers.RecordVideo(env, video_folder=folder, step_trigger=lambda step: step == 0,
                                               video_length=args.video_length, disable_logger=True)
                log.info("play: recording %d steps to %s", args.video_length, folder)
            register_rl_games_env(env, agent_cfg)
            agent_cfg["params"]["config"]["num_actors"] = env.unwrapped.num_envs
            return play(args, agent_cfg, pbt, _player)
        finally:
            env.close()
