"""Types and ranges of the agent settings people change, checked on the final config before anything is built.

A value that is wrong (``horizon_length=abc``, ``gamma=1.5``, a negative learning rate) would
otherwise surface as a traceback deep inside the RL library, or train quietly on nonsense. The
rules are data, one table per RL library, checked on the config as it will run: YAML, overrides
and flags together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .errors import UsageError


@dataclass(frozen=True)
class Rule:
    """A number's type and range: ``Rule("int", 1)`` is an integer >= 1, ``Rule("float", 0, 1, low_open=True)`` is in (0, 1]."""

    kind: str  # "int" or "float"
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    optional: bool = False  # None (YAML null) is allowed: the library then does without

    def describe(self) -> str:
        what = "an integer" if self.kind == "int" else "a number"
        if math.isinf(self.low) and math.isinf(self.high):
            return what
        if math.isinf(self.high):
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if math.isinf(self.low):
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return f"{what} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def fits(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


POSITIVE = Rule("float", 0, low_open=True)
RATE = Rule("float", 0, 1, low_open=True)  # a learning rate above 1 only ever diverges
EPOCHS = Rule("int", 1, 100)  # passes over each batch: beyond 100 an update never ends
NON_NEGATIVE = Rule("float", 0)
AT_LEAST_ONE = Rule("int", 1)
DISCOUNT = Rule("float", 0, 1, low_open=True)
FRACTION = Rule("float", 0, 1)

#: rl_games PPO settings under ``agent.params.config``.
RL_GAMES = {
    "learning_rate": RATE, "gamma": DISCOUNT, "tau": FRACTION, "e_clip": POSITIVE,
    "entropy_coef": NON_NEGATIVE, "critic_coef": NON_NEGATIVE, "bounds_loss_coef": NON_NEGATIVE,
    "grad_norm": POSITIVE, "kl_threshold": POSITIVE, "mini_epochs": EPOCHS, "horizon_length": AT_LEAST_ONE,
    "minibatch_size": AT_LEAST_ONE, "seq_length": AT_LEAST_ONE,  # num_actors: Isaac Lab's -1 means "the env's count"
    "max_epochs": Rule("int", -1), "max_frames": Rule("int", -1), "save_frequency": Rule("int", 0),
    "save_best_after": Rule("int", 0),
}

#: rsl_rl PPO settings under ``agent.algorithm`` (rsl_rl's own adaptive schedule bounds its rate to [1e-5, 1e-2]).
RSL_RL = {
    "learning_rate": RATE, "gamma": DISCOUNT, "lam": FRACTION, "clip_param": POSITIVE,
    "entropy_coef": NON_NEGATIVE, "value_loss_coef": NON_NEGATIVE, "max_grad_norm": Rule("float", 0, low_open=True, optional=True),
    "desired_kl": Rule("float", 0, low_open=True, optional=True), "num_learning_epochs": EPOCHS,
    "num_mini_batches": AT_LEAST_ONE,
}

#: skrl PPO settings under ``agent.agent`` (skrl 2.x ``PPO_CFG``; a clip or threshold of 0 switches it off).
SKRL = {
    "learning_rate": RATE, "discount_factor": DISCOUNT, "gae_lambda": FRACTION, "lambda": FRACTION,
    "ratio_clip": POSITIVE, "value_clip": NON_NEGATIVE, "grad_norm_clip": NON_NEGATIVE,
    "entropy_loss_scale": NON_NEGATIVE, "value_loss_scale": NON_NEGATIVE, "kl_threshold": NON_NEGATIVE,
    "learning_epochs": EPOCHS, "mini_batches": AT_LEAST_ONE, "rollouts": AT_LEAST_ONE,
    "rewards_shaper_scale": Rule("float", 0, low_open=True, optional=True),
}


def check(node: Optional[Mapping[str, Any]], rules: Mapping[str, Rule], where: str) -> None:
    """Raise :class:`UsageError` naming ``<where>.<key>`` for the first value in ``node`` that breaks its rule.

    Keys the config does not set are left to the library's defaults. Strings that spell a number
    (YAML 1.1 reads ``3e-4`` as text) are judged as that number.
    """
    for key, rule in rules.items():
        if not node or key not in node:
            continue
        value = node[key]
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if not rule.fits(value):
            raise UsageError(f"{where}.{key}: must be {rule.describe()}{' or null' if rule.optional else ''}, got {node[key]!r}")


#: Where each library's agent settings live in the agent config, and their rules.
TABLES = {"agent.params.config.": RL_GAMES, "agent.algorithm.": RSL_RL, "agent.agent.": SKRL}


def limits(key: str) -> tuple[float, float]:
    """The range a whitelisted key's rule allows (``(-inf, inf)`` for a key without one).

    PBT clips mutations and donors' values to it when ``agent.pbt.bounds`` gives none, so a
    record planted with ``mini_epochs: 100000`` or ``learning_rate: 1e30`` never reaches the agent.
    """
    for prefix, rules in TABLES.items():
        if key.startswith(prefix) and key[len(prefix):] in rules:
            rule = rules[key[len(prefix):]]
            return rule.low, rule.high
    return -math.inf, math.inf
