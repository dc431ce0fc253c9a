"""Hyperparameters of a running rsl_rl PPO: one name from the agent YAML to the live algorithm.

An rsl_rl agent config keeps PPO's settings under ``algorithm:``, and ``rsl_rl.algorithms.PPO``
stores each one as an attribute of the same name that its loop reads at every update, so the
whitelist key ``agent.algorithm.<name>`` is ``alg.<name>``. The learning rate is the one value
kept twice (the attribute, which the adaptive schedule moves, and the optimiser's param groups,
which the fixed schedule never rewrites): both are set together.
"""

from __future__ import annotations

from typing import Any, Mapping

PREFIX = "agent.algorithm."

#: PPO attributes read at every update or env step: changing them in a live learner takes effect at once.
LIVE = frozenset({
    "learning_rate", "entropy_coef", "clip_param", "gamma", "lam", "value_loss_coef",
    "max_grad_norm", "desired_kl", "num_learning_epochs", "num_mini_batches",
})
#: Integer settings (the YAML may give them as floats after a mutation).
INTEGERS = frozenset({"num_learning_epochs", "num_mini_batches"})


def is_live(key: str) -> bool:
    """True when ``key`` can change in a running learner; anything else (e.g. ``num_steps_per_env``) needs a restart."""
    return key.startswith(PREFIX) and key[len(PREFIX):] in LIVE


def read(alg: Any, key: str, config_value: Any) -> Any:
    """The value the learner uses now (``config_value`` for restart-only keys)."""
    if not is_live(key):
        return config_value
    value = getattr(alg, key[len(PREFIX):], None)
    return config_value if value is None else value


def write(alg: Any, values: Mapping[str, Any]) -> None:
    """Set live keys in the learner; restart-only keys are left to the restart."""
    for key, value in values.items():
        if not is_live(key):
            continue
        name = key[len(PREFIX):]
        value = int(round(value)) if name in INTEGERS else float(value)
        setattr(alg, name, value)
        if name == "learning_rate":
            for group in alg.optimizer.param_groups:
                group["lr"] = value
