"""Hyperparameters of a running rl_games agent: which can change live, and how to set them so they take effect.

rl_games keeps its own copies of the config values on the agent (and its scheduler), so writing
``agent.config`` alone changes nothing; these setters write every place the training loop reads.
Keys are agent-config paths as used in the PBT whitelist (``agent.params.config.<name>``).
"""

from __future__ import annotations

from typing import Any, Mapping

PREFIX = "agent.params.config."

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


def is_live(key: str) -> bool:
    """True when ``key`` can be changed in a running agent (else it needs a restart)."""
    return key.startswith(PREFIX) and key[len(PREFIX):] in LIVE_ATTRIBUTES


def read(algo: Any, key: str, config_value: float) -> float:
    """The value the agent uses now (``config_value`` for keys only a restart can change)."""
    if not is_live(key):
        return config_value
    value = getattr(algo, LIVE_ATTRIBUTES[key[len(PREFIX):]], None)
    return config_value if value is None else value


def write(algo: Any, values: Mapping[str, float]) -> None:
    """Set live values on the agent, its optimiser and its schedulers; other keys are ignored."""
    scheduler = getattr(algo, "scheduler", None)
    for key, value in values.items():
        if not is_live(key):
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
