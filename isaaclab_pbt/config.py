"""The PBT configuration: the ``pbt:`` block of an rl_games agent config, validated at start-up.

Every field of the user's page keeps its name and default. The fields below the spec's are the
knobs the reference systems lack; each defaults to the behaviour a user would expect. Validation
happens once, when a member starts, and each failure is one line that names the field and what
is allowed, so a typo never surfaces hours later at the first PBT tick.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .mutation import DEFAULT_BOUNDS, MUTATIONS

#: Values of :attr:`PbtCfg.apply`.
APPLY_MODES = ("auto", "in-place", "restart")
#: Values of :attr:`PbtCfg.objective_reduce`.
REDUCTIONS = ("mean", "max", "last")


class PbtConfigError(ValueError):
    """A ``pbt:`` block that cannot run; the message is one line naming the field."""


def _default_mutation() -> dict[str, str]:
    return {
        "agent.params.config.learning_rate": "mutate_float",
        "agent.params.config.grad_norm": "mutate_float",
        "agent.params.config.entropy_coef": "mutate_float",
        "agent.params.config.critic_coef": "mutate_float",
        "agent.params.config.bounds_loss_coef": "mutate_float",
        "agent.params.config.kl_threshold": "mutate_float",
        "agent.params.config.gamma": "mutate_discount",
        "agent.params.config.tau": "mutate_discount",
    }


@dataclass
class PbtCfg:
    """Population Based Training settings of one population member.

    Leaders are members whose objective beats ``max(mean + threshold_std * std, mean + threshold_abs)``;
    underperformers are below ``min(mean - threshold_std * std, mean - threshold_abs)``. Every
    ``interval_steps`` frames each member publishes its weights and objective; an underperformer then
    takes a random leader's weights (its own when there is no leader) and mutates the whitelisted
    hyperparameters.

    Example (the ``pbt:`` block of an agent YAML, or ``agent.pbt.<field>=<value>`` on the command line)::

        pbt:
          enabled: True
          policy_idx: 0
          num_policies: 8
          directory: /shared/pbt
          workspace: lift_ws
          objective: episode.Curriculum/adr
    """

    enabled: bool = False
    """Turn PBT on for this training process."""

    policy_idx: int = 0
    """This member's index in the population, unique per process, in ``[0, num_policies)``."""

    num_policies: int = 8
    """Number of members (processes) in the population."""

    directory: str = "."
    """Shared folder every member can read and write; logs go under ``<directory>/logs/rl_games``."""

    workspace: str = "pbt_workspace"
    """Name of the workspace folder inside :attr:`directory`; the same for every member."""

    objective: str = "episode.Curriculum/difficulty_level"
    """Dotted path into the env ``infos`` of the value to maximise (``episode.Curriculum/adr`` is ``infos["episode"]["Curriculum/adr"]``)."""

    interval_steps: int = 50_000_000
    """Environment frames between two PBT ticks of a member."""

    threshold_std: float = 0.1
    """Distance from the population mean, in standard deviations, beyond which a member leads or lags."""

    threshold_abs: float = 0.025
    """Distance from the population mean, in objective units, beyond which a member leads or lags."""

    mutation_rate: float = 0.25
    """Probability that each whitelisted hyperparameter is mutated when a member is acted on."""

    change_range: tuple[float, float] = (1.1, 2.0)
    """Range ``(min, max)``, ``1 <= min <= max``, of the factor a mutation multiplies or divides by."""

    mutation: dict[str, str] = field(default_factory=_default_mutation)
    """Whitelist: agent-config key (``agent.params.config.<name>``) to mutation function name."""

    objective_reduce: str = "mean"
    """How the objective values seen during an interval become one number: ``mean``, ``max`` or ``last``."""

    min_initialized: int = 2
    """Members with an objective that must be present before anyone is ranked or acted on."""

    burn_in_steps: int = 0
    """Frames after start and after every replacement during which this member is not acted on."""

    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per-parameter ``[low, high]`` limits on mutated values; functions have safe defaults (discounts below 1, integers at least 1)."""

    apply: str = "auto"
    """How a replacement takes effect: ``in-place`` (live agent), ``restart`` (re-exec the process) or ``auto`` (in place when every mutated key can change live)."""

    member_timeout_s: float = 3600.0
    """Seconds after which a member that published nothing new is left out of the ranking."""

    keep_checkpoints: int = 3
    """Most recent PBT iterations whose weights each member keeps in the workspace (at least 2)."""

    @property
    def workspace_dir(self) -> str:
        """Path of the shared workspace folder, ``<directory>/<workspace>``."""
        return os.path.join(self.directory, self.workspace)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field with its default, as plain YAML-ready values (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cls()).items()}

    @classmethod
    def from_agent_cfg(cls, agent_cfg: dict) -> "PbtCfg":
        """Build and validate the config from a whole agent config (the ``pbt:`` block and the keys it whitelists).

        Whitelisted values that YAML read as strings (``3e-4``) become floats in ``agent_cfg``.
        """
        block = agent_cfg.get("pbt") or {}
        if not isinstance(block, Mapping):
            raise PbtConfigError(f"agent.pbt: must be a mapping of PBT settings, got {type(block).__name__}")
        cfg = cls.from_dict(block)
        if cfg.enabled:
            cfg.coerce_numeric_strings(agent_cfg)
            cfg.check_whitelist(agent_cfg)
        return cfg

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "PbtCfg":
        """Build from a ``pbt:`` mapping, checking names, types and ranges."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in block.items():
            if key not in names:
                hint = difflib.get_close_matches(str(key), names, n=1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else f"; allowed: {', '.join(names)}"
                raise PbtConfigError(f"agent.pbt.{key}: unknown PBT setting{extra}")
            kwargs[key] = _coerce(key, value, names[key].type)
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check ranges and names; raises :class:`PbtConfigError` with one line naming the field."""
        if self.num_policies < 1:
            _fail("num_policies", f"must be at least 1, got {self.num_policies}")
        if not 0 <= self.policy_idx < self.num_policies:
            _fail("policy_idx", f"must be in [0, {self.num_policies}) for num_policies={self.num_policies}, got {self.policy_idx}")
        if self.interval_steps < 1:
            _fail("interval_steps", f"must be a positive number of frames, got {self.interval_steps}")
        for name in ("threshold_std", "threshold_abs"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                _fail(name, f"must be a finite number >= 0, got {value}")
        if not 0.0 <= self.mutation_rate <= 1.0:
            _fail("mutation_rate", f"must be in [0, 1], got {self.mutation_rate}")
        lo, hi = self.change_range
        if not (math.isfinite(hi) and 1.0 <= lo <= hi):
            _fail("change_range", f"must be [min, max] with 1 <= min <= max, got [{lo}, {hi}]")
        if not self.objective or any(not part for part in self.objective.split(".")):
            _fail("objective", f"must be a dotted path such as 'episode.Curriculum/adr', got '{self.objective}'")
        for key, fn in self.mutation.items():
            if fn not in MUTATIONS:
                _fail(f"mutation.{key}", f"unknown mutation function '{fn}'; allowed: {', '.join(MUTATIONS)}")
            if not key.startswith("agent."):
                _fail(f"mutation.{key}", "keys must be agent-config paths starting with 'agent.', e.g. agent.params.config.learning_rate")
        for key, (low, high) in self.bounds.items():
            if key not in self.mutation:
                _fail(f"bounds.{key}", f"bounds given for a key that is not in agent.pbt.mutation; mutated keys: {', '.join(self.mutation) or 'none'}")
            if not low <= high:
                _fail(f"bounds.{key}", f"must be [low, high] with low <= high, got [{low}, {high}]")
        if self.objective_reduce not in REDUCTIONS:
            _fail("objective_reduce", f"must be one of {', '.join(REDUCTIONS)}, got '{self.objective_reduce}'")
        if self.apply not in APPLY_MODES:
            _fail("apply", f"must be one of {', '.join(APPLY_MODES)}, got '{self.apply}'")
        if self.min_initialized < 1:
            _fail("min_initialized", f"must be at least 1, got {self.min_initialized}")
        if self.burn_in_steps < 0:
            _fail("burn_in_steps", f"must be >= 0 frames, got {self.burn_in_steps}")
        if not self.member_timeout_s > 0:
            _fail("member_timeout_s", f"must be > 0 seconds, got {self.member_timeout_s}")
        if self.keep_checkpoints < 2:
            _fail("keep_checkpoints", f"must be at least 2 so others never read a deleted iteration, got {self.keep_checkpoints}")

    def coerce_numeric_strings(self, agent_cfg: dict) -> None:
        """Turn whitelisted values written as strings (YAML 1.1 reads ``3e-4`` as text) into floats, in place."""
        for key in self.mutation:
            parts = key.split(".")[1:]  # drop the leading "agent"
            node = agent_cfg
            for part in parts[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get(parts[-1]), str):
                try:
                    node[parts[-1]] = float(node[parts[-1]])
                except ValueError:
                    pass  # left for check_whitelist to report

    def check_whitelist(self, agent_cfg: Mapping[str, Any]) -> None:
        """Every whitelisted key must name an existing numeric entry of the agent config."""
        flat = flatten({"agent": agent_cfg})
        for key in self.mutation:
            if key not in flat:
                hint = difflib.get_close_matches(key, flat, n=1, cutoff=0.6)
                extra = f"; did you mean '{hint[0]}'?" if hint else ""
                _fail(f"mutation.{key}", f"this key does not exist in the agent config{extra}")
            value = flat[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(f"mutation.{key}", f"only numbers can be mutated, the agent config has {value!r}")

    def bounds_for(self, key: str) -> tuple[float, float]:
        """Limits for a mutated key: the user's, else the mutation function's default."""
        if key in self.bounds:
            return self.bounds[key]
        return DEFAULT_BOUNDS[self.mutation[key]]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of nested mappings: ``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _fail(name: str, message: str) -> None:
    raise PbtConfigError(f"agent.pbt.{name}: {message}")


def _coerce(name: str, value: Any, annotation: str) -> Any:
    """Check one value against the field's annotation and return it in the field's type."""
    def number(v: Any, what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _fail(name, f"must be {what}, got {v!r}")
        return v

    if annotation == "bool":
        if not isinstance(value, bool):
            _fail(name, f"must be True or False, got {value!r}")
        return value
    if annotation == "int":
        value = number(value, "an integer")
        if isinstance(value, float):
            if not value.is_integer():
                _fail(name, f"must be an integer, got {value!r}")
            value = int(value)
        return value
    if annotation == "float":
        return float(number(value, "a number"))
    if annotation == "str":
        if not isinstance(value, str):
            _fail(name, f"must be a string, got {value!r}")
        return value
    if annotation == "tuple[float, float]":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            _fail(name, f"must be a pair [min, max], got {value!r}")
        return tuple(float(number(v, "a pair of numbers")) for v in value)
    if annotation == "dict[str, str]":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            _fail(name, f"must map agent-config keys to mutation function names, got {value!r}")
        return dict(value)
    if annotation == "dict[str, tuple[float, float]]":
        if not isinstance(value, Mapping):
            _fail(name, f"must map agent-config keys to [low, high], got {value!r}")
        return {k: _coerce(f"{name}.{k}", v, "tuple[float, float]") for k, v in value.items()}
    raise AssertionError(f"no coercion for {annotation}")  # a new field without a rule above
