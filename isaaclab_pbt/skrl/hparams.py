"""Hyperparameters of a running skrl PPO agent: one name from the agent YAML to the live agent.

An skrl agent config (Isaac Lab's ``skrl_ppo_cfg.yaml`` layout) keeps PPO's settings under
``agent:``; skrl's ``Runner`` turns them into the agent's ``PPO_CFG`` dataclass, ``agent.cfg``,
and ``PPO.update`` reads ``cfg.learning_epochs``, ``cfg.mini_batches``, ``cfg.discount_factor``,
``cfg.gae_lambda``, ``cfg.kl_threshold``, ``cfg.entropy_loss_scale``, ``cfg.ratio_clip``,
``cfg.value_clip``, ``cfg.value_loss_scale`` and ``cfg.grad_norm_clip`` again at every update, so
the whitelist key ``agent.agent.<name>`` is ``agent.cfg.<name>`` (``lambda``, the name Isaac Lab's
YAMLs still use, is skrl 2's ``gae_lambda``).

Three settings are copied once when the agent is built and are written in every place instead:

* ``learning_rate`` goes into the Adam optimiser when it is made (``cfg.learning_rate[0]``): it is
  set in the optimiser's param groups, in ``cfg.learning_rate`` and in the scheduler's
  ``base_lrs``/``_last_lr`` (a KL-adaptive schedule then moves it on from the value PBT set);
* ``learning_rate_scheduler_kwargs.kl_threshold`` lives in the ``KLAdaptiveLR`` instance;
* ``rewards_shaper_scale`` becomes a closure in ``cfg.rewards_shaper`` (read at every env step),
  which is replaced by a scaler of the new value.

``rollouts`` sizes the rollout memory when the agent is built (and ``post_interaction`` reads it
at every step against that memory), so it needs a restart, as do the models, the memory, the
preprocessors, ``mixed_precision`` and anything else. ``env.rewards.<term>.weight`` is live in an
env that can set it (the embedded PuckPush).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

PREFIX = "agent.agent."
_REWARD_WEIGHT = re.compile(r"^env\.rewards\.([^.]+)\.weight$")

#: YAML name -> ``PPO_CFG`` attribute that ``PPO.update`` (or ``record_transition``) reads at every update.
CFG_ATTRIBUTES = {
    "learning_epochs": "learning_epochs", "mini_batches": "mini_batches", "discount_factor": "discount_factor",
    "gae_lambda": "gae_lambda", "lambda": "gae_lambda", "kl_threshold": "kl_threshold",
    "entropy_loss_scale": "entropy_loss_scale", "value_loss_scale": "value_loss_scale", "ratio_clip": "ratio_clip",
    "value_clip": "value_clip", "grad_norm_clip": "grad_norm_clip",
}
#: Settings copied once at construction that :func:`write` sets wherever the agent keeps them.
COPIED = frozenset({"learning_rate", "learning_rate_scheduler_kwargs.kl_threshold", "rewards_shaper_scale"})
#: Every live YAML name under ``agent:``.
LIVE = frozenset(CFG_ATTRIBUTES) | COPIED
#: Integer settings (a mutation may give them as floats).
INTEGERS = frozenset({"learning_epochs", "mini_batches"})


class ScaleRewards:
    """``cfg.rewards_shaper`` for ``rewards_shaper_scale``: what skrl's Runner builds, as an object whose scale can be read back."""

    def __init__(self, scale: float):
        self.scale = float(scale)

    def __call__(self, rewards: Any, *args: Any, **kwargs: Any) -> Any:
        return rewards * self.scale


def is_live(key: str, env: Any = None) -> bool:
    """True when ``key`` can change in a running agent; anything else (``rollouts``, the models) needs a restart.

    Reward weights are live only in an env that can set them, so without ``env`` they count as live
    when they look like ``env.rewards.<term>.weight``.
    """
    if _REWARD_WEIGHT.match(key):
        return env is None or callable(getattr(env, "set_reward_weight", None))
    return key.startswith(PREFIX) and key[len(PREFIX):] in LIVE


def read(agent: Any, key: str, config_value: Any, env: Any = None) -> Any:
    """The value the agent uses now (``config_value`` for restart-only keys and for what the agent does not keep)."""
    if not is_live(key, env):
        return config_value
    match = _REWARD_WEIGHT.match(key)
    if match:
        return getattr(env, "reward_weights", {}).get(match.group(1), config_value)
    name = key[len(PREFIX):]
    if name == "learning_rate":
        value: Optional[Any] = agent.optimizer.param_groups[0]["lr"]
    elif name == "learning_rate_scheduler_kwargs.kl_threshold":
        value = getattr(getattr(agent, "scheduler", None), "kl_threshold", None)
    elif name == "rewards_shaper_scale":
        value = getattr(agent.cfg.rewards_shaper, "scale", None)
    else:
        value = getattr(agent.cfg, CFG_ATTRIBUTES[name], None)
    return config_value if value is None else value


def write(agent: Any, values: Mapping[str, Any], env: Any = None) -> None:
    """Set the live keys among ``values`` wherever the running agent reads them; restart-only keys are left to the restart."""
    for key, value in values.items():
        if not is_live(key, env):
            continue
        match = _REWARD_WEIGHT.match(key)
        if match:
            env.set_reward_weight(match.group(1), float(value))
            continue
        name = key[len(PREFIX):]
        value = int(round(value)) if name in INTEGERS else float(value)
        if name == "learning_rate":
            set_learning_rate(agent, value)
        elif name == "learning_rate_scheduler_kwargs.kl_threshold":
            scheduler = getattr(agent, "scheduler", None)
            if scheduler is not None and hasattr(scheduler, "kl_threshold"):
                scheduler.kl_threshold = value
        elif name == "rewards_shaper_scale":
            agent.cfg.rewards_shaper = ScaleRewards(value)
        else:
            setattr(agent.cfg, CFG_ATTRIBUTES[name], value)


def set_learning_rate(agent: Any, value: float) -> None:
    """The learning rate in every place skrl keeps it: the optimiser's groups, the config and the scheduler."""
    for group in agent.optimizer.param_groups:
        group["lr"] = value
    lr = agent.cfg.learning_rate
    agent.cfg.learning_rate = tuple(value for _ in lr) if isinstance(lr, (tuple, list)) else value
    scheduler = getattr(agent, "scheduler", None)
    if scheduler is not None:
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [value for _ in scheduler.base_lrs]
        scheduler._last_lr = [group["lr"] for group in agent.optimizer.param_groups]
