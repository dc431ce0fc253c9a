"""A running rl_games agent as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

Everything the core asks of a learner is answered here from rl_games' own objects: frames and
budget from the agent's counters, the full training state through
:mod:`~isaaclab_pbt.rl_games.checkpoint` (``get_full_state_weights``, which rl_games' own loader
reads), and the live hyperparameters, by the same name the YAML and the PBT whitelist use:
``agent.params.config.<name>``, or ``env.rewards.<term>.weight`` for a reward weight.

rl_games keeps its own copies of config values on the agent (and its scheduler), so writing
``agent.config`` alone changes nothing: :func:`write` sets every place the training loop reads.
A reward weight is live when the env can change it: the embedded tasks' ``set_reward_weight`` or
an Isaac Lab manager-based env's reward manager.
"""

from __future__ import annotations

import os
import re
from typing import Any, BinaryIO, Mapping, Optional

from ..core.errors import UsageError
from . import checkpoint

PREFIX = "agent.params.config."
_REWARD_WEIGHT = re.compile(r"^env\.rewards\.([^.]+)\.weight$")

#: Config name -> agent attribute read by the rl_games PPO loop at every epoch or minibatch.
LIVE_ATTRIBUTES = {
    "learning_rate": "last_lr",
    "entropy_coef": "entropy_coef",
    "critic_coef": "critic_coef",
    "bounds_loss_coef": "bounds_loss_coef",
    "grad_norm": "grad_norm",
    "e_clip": "e_clip",
    "gamma": "gamma",
    "tau": "tau",
    "kl_threshold": "kl_threshold",
    "mini_epochs": "mini_epochs_num",
}


def is_live(key: str, algo: Any = None) -> bool:
    """True when ``key`` can be changed in a running agent (else it needs a restart).

    Reward weights are live only in an env that can set them, so without ``algo`` they count as live
    when they look like ``env.rewards.<term>.weight``.
    """
    match = _REWARD_WEIGHT.match(key)
    if match:
        return algo is None or _reward_env(algo) is not None
    return key.startswith(PREFIX) and key[len(PREFIX):] in LIVE_ATTRIBUTES


def read(algo: Any, key: str, config_value: Any) -> Any:
    """The value the agent uses now (``config_value`` for keys only a restart can change)."""
    if not is_live(key, algo):
        return config_value
    match = _REWARD_WEIGHT.match(key)
    if match:
        return _reward_weight(_reward_env(algo), match.group(1), config_value)
    value = getattr(algo, LIVE_ATTRIBUTES[key[len(PREFIX):]], None)
    return config_value if value is None else value


def _reward_env(algo: Any) -> Optional[Any]:
    """The env object behind rl_games' ``vec_env`` that can change reward weights, if there is one.

    The embedded tasks are rl_games' vec env themselves; Isaac Lab's sits behind the rl_games
    wrapper (``.env``) and gym's wrappers (``.unwrapped``).
    """
    node, seen = getattr(algo, "vec_env", None), 0
    while node is not None and seen < 6:
        if callable(getattr(node, "set_reward_weight", None)) or hasattr(node, "reward_manager"):
            return node
        node, seen = getattr(node, "env", None) or getattr(node, "unwrapped", None), seen + 1
    return None


def _reward_weight(env: Any, term: str, default: Any) -> Any:
    if hasattr(env, "reward_weights"):
        return env.reward_weights.get(term, default)
    try:
        return env.reward_manager.get_term_cfg(term).weight
    except (AttributeError, ValueError, KeyError):
        return default


def _set_reward_weight(env: Any, term: str, value: float) -> None:
    if callable(getattr(env, "set_reward_weight", None)):
        env.set_reward_weight(term, value)
        return
    manager = env.reward_manager  # Isaac Lab reads term_cfg.weight at every step
    term_cfg = manager.get_term_cfg(term)
    term_cfg.weight = value
    manager.set_term_cfg(term, term_cfg)


def write(algo: Any, values: Mapping[str, Any]) -> None:
    """Set live values on the agent, its optimiser, its schedulers and its env; other keys are ignored."""
    scheduler = getattr(algo, "scheduler", None)
    for key, value in values.items():
        if not is_live(key, algo):
            continue
        match = _REWARD_WEIGHT.match(key)
        if match:
            _set_reward_weight(_reward_env(algo), match.group(1), float(value))
            continue
        name = key[len(PREFIX):]
        if name == "learning_rate":
            value = float(value)
            algo.last_lr = value
            algo.update_lr(value)  # optimiser param groups
            if hasattr(scheduler, "start_lr"):  # the linear schedule decays from its start value
                scheduler.start_lr = value
        elif name == "entropy_coef" and getattr(scheduler, "apply_to_entropy", False):
            scheduler.start_entropy_coef = float(value)
            algo.entropy_coef = float(value)
        elif name == "kl_threshold" and hasattr(scheduler, "kl_threshold"):
            scheduler.kl_threshold = float(value)  # the adaptive schedule reads its own copy
            algo.kl_threshold = float(value)
        elif name == "mini_epochs":
            value = max(1, int(round(value)))
            algo.mini_epochs_num = value
        else:
            value = float(value)
            setattr(algo, LIVE_ATTRIBUTES[name], value)
        algo.config[name] = value


KEEP_NN_COPIES = 2
"""Newest ``pbt_*`` and ``restore_*`` copies kept in the run's nn/ folder at each restart (rl_games' own checkpoints stay)."""
RUN_NAME_KEY = "+agent.params.config.full_experiment_name"
"""The override that makes a restarted process train on in the same run folder."""


class RlGamesLearner:
    """Frames, live hyperparameters and full states of one rl_games ``A2CAgent`` (see :class:`~isaaclab_pbt.core.member.Learner`)."""

    library = "rl_games"

    def __init__(self, algo: Any):
        if getattr(algo, "multi_gpu", False):
            raise UsageError("agent.pbt.enabled: a member cannot use multi_gpu=True; run one process per member")
        self.algo = algo

    def frames(self) -> int:
        return int(self.algo.frame)

    def iteration_frames(self) -> int:
        return int(self.algo.curr_frames)

    def read(self, key: str, config_value: Any) -> Any:
        return read(self.algo, key, config_value)

    def is_live(self, key: str) -> bool:
        return is_live(key, self.algo)

    def write(self, values: Mapping[str, Any]) -> None:
        write(self.algo, values)

    def snapshot(self) -> dict:
        return checkpoint.published_state(self.algo)

    def save(self, state: dict, f: BinaryIO) -> None:
        checkpoint.save(state, f)

    def load(self, f: BinaryIO) -> dict:
        return checkpoint.load(f, self.algo.ppo_device)

    def misfit(self, state: Any) -> Optional[str]:
        try:
            checkpoint.check_fits(self.algo, state)
        except ValueError as e:
            return str(e)
        return None

    def load_into(self, state: dict) -> None:
        checkpoint.load_into(self.algo, state)

    def digest(self, state: dict) -> str:
        return checkpoint.model_digest(state["model"])

    def budget_spent(self) -> bool:
        algo = self.algo
        return (0 < algo.max_epochs <= algo.epoch_num) or (0 < algo.max_frames <= algo.frame)

    def restart_state(self, state: dict) -> dict:
        return {**state, "frame": self.algo.frame, "epoch": self.algo.epoch_num}

    def run_overrides(self) -> dict[str, Any]:
        return {RUN_NAME_KEY: self.algo.experiment_name}

    def save_restart(self, state: dict, name: str) -> str:
        """``state`` as ``nn/<name>.pth`` of this run, where rl_games' ``--checkpoint`` restore reads it; older PBT copies pruned."""
        path = os.path.abspath(os.path.join(self.algo.nn_dir, name + ".pth"))
        with open(path, "wb") as f:
            checkpoint.save(state, f)
        for prefix in ("pbt_", "restore_"):
            checkpoint.prune(self.algo.nn_dir, prefix, KEEP_NN_COPIES)
        return path

    def scalar(self, name: str, value: float, frame: int) -> None:
        if self.algo.writer is not None:
            self.algo.writer.add_scalar(name, value, frame)

    def before_exec(self) -> None:
        if self.algo.writer is not None:
            self.algo.writer.flush()
