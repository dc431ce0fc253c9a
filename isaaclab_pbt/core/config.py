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
from typing import Any, Callable, Mapping, Sequence

from .agent_config import MISSING, flatten, get_value, roots, set_value
from .errors import UsageError
from .mutation import DEFAULT_BOUNDS, KINDS, KeySpace
from .values import limits

#: Values of :attr:`PbtCfg.apply`.
APPLY_MODES = ("auto", "in-place", "restart")
#: Values of :attr:`PbtCfg.objective_reduce`.
REDUCTIONS = ("mean", "max", "last")
#: Values of :attr:`PbtCfg.selection`.
SELECTIONS = ("cuts", "fractions")
#: Values of :attr:`PbtCfg.compare`.
COMPARISONS = ("latest", "equal_frames")
#: Values of :attr:`PbtCfg.mode`.
MODES = ("processes", "shared", "batched")
#: Values of :attr:`PbtCfg.hyperparameters_from`.
HYPERPARAMETER_SOURCES = ("donor", "own", "either")
#: Roots a whitelisted key may start with: the agent config, or the env config (reward weights).
ROOTS = ("agent", "env")


class PbtConfigError(UsageError):
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
    """How a replacement takes effect: ``in-place`` (live agent), ``restart`` (re-exec the process) or ``auto``
    (in place when every mutated key can change live)."""

    member_timeout_s: float = 3600.0
    """Seconds after which a member that published nothing new is left out of the ranking."""

    keep_checkpoints: int = 3
    """Most recent PBT iterations whose weights each member keeps in the workspace (at least 2)."""

    # -- exploit: who is replaced, by whom, and when ----------------------------------------------
    selection: str = "cuts"
    """How leaders and underperformers are found: ``cuts`` (the mean/std cuts above) or ``fractions``.

    ``fractions`` is DexPBT's rule: the worst :attr:`replace_fraction_worst` of the ranked members
    (rounded up) continue from a random member of the best :attr:`replace_fraction_best`, but only
    when that donor leads by more than :attr:`replace_threshold_frac_std` standard deviations and by
    more than :attr:`replace_threshold_frac_absolute` of its objective (otherwise they only mutate).
    It acts on a fixed share of the population at every tick, however spread the objectives are.
    Example: 8 members, ``0.125`` and ``0.3``: the worst one copies one of the best three.
    """

    replace_fraction_worst: float = 0.125
    """With ``selection: fractions``: share of the ranked members, rounded up, that are underperformers; in ``(0, 1]``."""

    replace_fraction_best: float = 0.3
    """With ``selection: fractions``: share of the ranked members, rounded up, that are leaders (donors); in ``(0, 1]``."""

    replace_threshold_frac_std: float = 0.5
    """With ``selection: fractions``: the donor must lead by more than this many population stds.

    The std leaves out the worst 20 % of the ranked members, so one crashed member cannot make
    every gap look small. A gap too small to trust means the member keeps its weights and mutates.
    """

    replace_threshold_frac_absolute: float = 0.05
    """With ``selection: fractions``: the donor must also lead by more than this fraction of its own objective."""

    noise_guard: bool = False
    """Spare an underperformer whose best objective value within the interval reaches the weakest leader's.

    An interval's mean can be dragged down by a few unlucky episodes; if the member did as well as
    a leader at some point of the interval, replacing it would be judging noise (DexPBT's guard).
    """

    compare: str = "latest"
    """Which record of every other member a member is ranked against: ``latest`` or ``equal_frames``.

    ``latest`` (the seed's behaviour) takes everyone's newest record, so a member that restarted or
    trains slower is judged against objectives measured further into training than its own.
    ``equal_frames`` takes each member's newest record at or before this member's frame count
    (from the workspace's history), so members are compared after the same amount of experience;
    a donor still hands over its newest weights. Members with no record that early are not ranked.
    """

    initial_delay_steps: int = 0
    """Frames from the start of training before a member can be acted on (DexPBT's ``initial_delay``).

    Gives members time to develop differences before the first verdict; :attr:`burn_in_steps`
    is the grace after every replacement and every (re)start of the process.
    """

    # -- explore: what the new hyperparameters are ------------------------------------------------
    hyperparameters_from: str = "donor"
    """Whose values a replaced member mutates: the ``donor``'s, its ``own``, or ``either`` (50/50, as DexPBT).

    Taking the donor's values copies what worked; keeping one's own explores more widely while the
    weights still come from the donor.
    """

    resample_probability: float = 0.0
    """Probability that a mutated key is drawn afresh from its range instead of perturbed (Ray Tune's option).

    The range is the key's :attr:`bounds` (log-uniform for positive floats, over ``1 - v`` for
    discounts) or its :attr:`choices`; keys without a finite range are always perturbed.
    Example: ``0.25`` with ``bounds: {agent.params.config.learning_rate: [1e-5, 1e-2]}``.
    """

    choices: dict[str, list] = field(default_factory=dict)
    """For keys whitelisted as ``mutate_choice``: the ordered list of numbers they may take.

    For values that only make sense on a grid (minibatch sizes, horizons, mini-epochs): a mutation
    steps to a neighbouring entry, a resample picks any entry.
    Example: ``{agent.params.config.mini_epochs: [2, 4, 8]}``.
    """

    diversify: bool = False
    """Mutate every whitelisted value of every member once at launch (seeded by ``seed`` and ``policy_idx``).

    Members then start from different hyperparameters, which is what random search does and what
    DexPBT does before its first tick. Only a fresh start diversifies, never a restart or a resume;
    the values drawn are in the member's lineage as a ``diversified`` event.
    """

    mode: str = "processes"
    """How the population runs: ``processes`` (one process per member), ``shared`` or ``batched`` (all in one process).

    ``processes`` is Isaac Lab's layout: each member is its own process with its own simulator,
    started by hand, by the launcher or by a cluster, and they meet only in the workspace folder.
    ``shared`` runs the whole population in the process started with it (``policy_idx`` is then
    ignored): one vectorised env of ``num_policies`` blocks of the agent's env count, one learner
    per block, and exploit/explore in memory at each interval, so the simulator, the interpreter
    and the libraries are loaded once instead of once per member. Hyperparameters change in
    place only (``apply: restart`` and restart-only keys are refused). Members still publish to
    the same workspace layout, so every results tool works unchanged.
    ``batched`` (rl_games and rsl_rl) is ``shared`` with the members' networks stacked into one PPO that
    updates them all at once, so the interpreter's work is paid once per population instead of
    once per member: the fastest on a CPU, for members of one network shape (only the
    hyperparameters PBT mutates in place may differ).
    Example: ``agent.pbt.mode=shared agent.pbt.num_policies=8``.
    """

    @property
    def one_process(self) -> bool:
        """True when the whole population runs in this process (``mode`` is ``shared`` or ``batched``)."""
        return self.mode != "processes"

    @property
    def workspace_dir(self) -> str:
        """Path of the shared workspace folder, ``<directory>/<workspace>``."""
        return os.path.join(self.directory, self.workspace)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field with its default, as plain YAML-ready values (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cls()).items()}

    @classmethod
    def from_agent_cfg(cls, agent_cfg: dict, env_cfg: Any = None) -> PbtCfg:
        """Build and validate the config from a whole agent config (the ``pbt:`` block and the keys it whitelists).

        Whitelisted values that YAML read as strings (``3e-4``) become floats in ``agent_cfg``.
        ``env_cfg`` holds the ``env.*`` keys (see :meth:`start_values`).
        """
        block = agent_cfg.get("pbt") or {}
        if not isinstance(block, Mapping):
            raise PbtConfigError(f"agent.pbt: must be a mapping of PBT settings, got {type(block).__name__}")
        cfg = cls.from_dict(block)
        if cfg.enabled:
            cfg.coerce_numeric_strings(agent_cfg, env_cfg)
            cfg.check_whitelist(agent_cfg, env_cfg)
        return cfg

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> PbtCfg:
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
            if fn not in KINDS:
                _fail(f"mutation.{key}", f"unknown mutation function '{fn}'; allowed: {', '.join(KINDS)}")
            if key.split(".", 1)[0] not in ROOTS or "." not in key:
                _fail(f"mutation.{key}", "keys must be config paths starting with 'agent.' or 'env.', "
                      "e.g. agent.params.config.learning_rate or env.rewards.<term>.weight")
            if fn == "mutate_choice" and key not in self.choices:
                _fail(f"mutation.{key}", f"mutate_choice needs the list of values in agent.pbt.choices.{key}")
        for key, (low, high) in self.bounds.items():
            if key not in self.mutation:
                _fail(f"bounds.{key}", f"bounds given for a key that is not in agent.pbt.mutation; mutated keys: {', '.join(self.mutation) or 'none'}")
            if self.mutation[key] == "mutate_choice":
                _fail(f"bounds.{key}", "a mutate_choice key takes its values from agent.pbt.choices, not bounds")
            if not low <= high:
                _fail(f"bounds.{key}", f"must be [low, high] with low <= high, got [{low}, {high}]")
        for key, values in self.choices.items():
            if self.mutation.get(key) != "mutate_choice":
                _fail(f"choices.{key}", "choices are for keys whitelisted as mutate_choice in agent.pbt.mutation")
            if len(values) < 2 or len(set(map(repr, values))) != len(values):
                _fail(f"choices.{key}", f"must list at least 2 distinct values, got {values!r}")
        if self.selection not in SELECTIONS:
            _fail("selection", f"must be one of {', '.join(SELECTIONS)}, got '{self.selection}'")
        for name in ("replace_fraction_worst", "replace_fraction_best"):
            if not 0.0 < getattr(self, name) <= 1.0:
                _fail(name, f"must be in (0, 1], got {getattr(self, name)}")
        for name in ("replace_threshold_frac_std", "replace_threshold_frac_absolute"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                _fail(name, f"must be a finite number >= 0, got {value}")
        if self.compare not in COMPARISONS:
            _fail("compare", f"must be one of {', '.join(COMPARISONS)}, got '{self.compare}'")
        if self.initial_delay_steps < 0:
            _fail("initial_delay_steps", f"must be >= 0 frames, got {self.initial_delay_steps}")
        if self.hyperparameters_from not in HYPERPARAMETER_SOURCES:
            _fail("hyperparameters_from", f"must be one of {', '.join(HYPERPARAMETER_SOURCES)}, got '{self.hyperparameters_from}'")
        if not 0.0 <= self.resample_probability <= 1.0:
            _fail("resample_probability", f"must be in [0, 1], got {self.resample_probability}")
        if self.resample_probability > 0 and self.mutation and not any(ks.can_resample for ks in self.space().values()):
            _fail("resample_probability", "no whitelisted key has a range to draw from; "
                  "give agent.pbt.bounds.<key>: [low, high] (finite) or agent.pbt.choices.<key>")
        if self.objective_reduce not in REDUCTIONS:
            _fail("objective_reduce", f"must be one of {', '.join(REDUCTIONS)}, got '{self.objective_reduce}'")
        if self.mode not in MODES:
            _fail("mode", f"must be one of {', '.join(MODES)}, got '{self.mode}'")
        if self.one_process and self.apply == "restart":
            _fail("apply", f"'restart' re-executes the process, and with mode '{self.mode}' that is the whole population; use 'in-place' or 'auto'")
        if self.apply not in APPLY_MODES:
            _fail("apply", f"must be one of {', '.join(APPLY_MODES)}, got '{self.apply}'")
        if not 1 <= self.min_initialized <= self.num_policies:
            _fail("min_initialized", f"must be in [1, num_policies={self.num_policies}] (more could never report), got {self.min_initialized}")
        if not self.workspace or self.workspace in (".", "..") or "/" in self.workspace or os.sep in self.workspace:
            _fail("workspace", f"must be the name of one folder inside agent.pbt.directory (no '/', not '.' or '..'), got '{self.workspace}'")
        if self.burn_in_steps < 0:
            _fail("burn_in_steps", f"must be >= 0 frames, got {self.burn_in_steps}")
        if not self.member_timeout_s > 0:
            _fail("member_timeout_s", f"must be > 0 seconds, got {self.member_timeout_s}")
        if self.keep_checkpoints < 2:
            _fail("keep_checkpoints", f"must be at least 2 so others never read a deleted iteration, got {self.keep_checkpoints}")

    def coerce_numeric_strings(self, agent_cfg: dict, env_cfg: Any = None) -> None:
        """Turn whitelisted values written as strings (YAML 1.1 reads ``3e-4`` as text) into floats, in place."""
        configs = roots(agent_cfg, env_cfg)
        for key, kind in self.mutation.items():
            value = get_value(configs, key)
            if kind == "mutate_choice" or not isinstance(value, str):
                continue
            try:
                set_value(configs, key, float(value))
            except ValueError:
                pass  # left for start_values to report

    def start_values(self, agent_cfg: Mapping[str, Any], env_cfg: Any = None) -> dict[str, Any]:
        """The configured value of every whitelisted key; a missing or non-numeric one is an error naming it.

        ``env.*`` keys are read from ``env_cfg`` (a dict or an Isaac Lab configclass); without one,
        from the agent's ``params.config.env_config``, where the embedded tasks keep theirs.
        """
        configs = roots(agent_cfg, env_cfg)
        values = {}
        for key, kind in self.mutation.items():
            value = get_value(configs, key)
            if value is MISSING:
                known = list(flatten({"agent": agent_cfg})) if key.startswith("agent.") else []
                hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                extra = f"; did you mean '{hint[0]}'?" if hint else ""
                _fail(f"mutation.{key}", f"this key does not exist in the {key.split('.', 1)[0]} config{extra}")
            if kind == "mutate_choice":
                if value not in self.choices[key]:
                    _fail(f"choices.{key}", f"the config's value {value!r} is not one of the choices {self.choices[key]!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(f"mutation.{key}", f"only numbers can be mutated with {kind}, the config has {value!r}")
            values[key] = value
        return values

    def set_value(self, agent_cfg: dict, env_cfg: Any, key: str, value: Any) -> None:
        """Write a whitelisted key where :meth:`start_values` reads it (a dict entry or a configclass attribute)."""
        set_value(roots(agent_cfg, env_cfg), key, value)

    def check_whitelist(self, agent_cfg: Mapping[str, Any], env_cfg: Any = None) -> None:
        """Every whitelisted key must name an existing entry of the right type (see :meth:`start_values`)."""
        self.start_values(agent_cfg, env_cfg)

    def bounds_for(self, key: str) -> tuple[float, float]:
        """Limits for a mutated key: the user's, else the mutation function's default within the range the key's rule allows."""
        if key in self.bounds:
            return self.bounds[key]
        low, high = DEFAULT_BOUNDS.get(self.mutation[key], (-math.inf, math.inf))
        allowed_low, allowed_high = limits(key)
        return max(low, allowed_low), min(high, allowed_high)

    def space(self) -> dict[str, KeySpace]:
        """How each whitelisted key may change: kind, bounds and choices, as :func:`~isaaclab_pbt.core.mutation.mutate` takes them."""
        return {
            key: KeySpace(kind, self.bounds_for(key), tuple(self.choices[key]) if kind == "mutate_choice" else None,
                          drawable=key in self.bounds or all(map(math.isfinite, DEFAULT_BOUNDS.get(kind, (math.inf,)))))
            for key, kind in self.mutation.items()
        }


def check_pbt_use(pbt: PbtCfg, overrides: Sequence[str], is_live: Callable[[str], bool],
                  modes: Sequence[str] = MODES) -> None:
    """Refuse PBT settings that would be ignored or could never act, before anything is written.

    ``agent.pbt.*`` tokens without ``agent.pbt.enabled=True`` would train one plain learner while
    the user believes a population runs; ``apply: in-place`` cannot change a restart-only key; a
    backend runs only the ``modes`` it has; and the shared directory must be a folder this
    process can write.
    """
    given = [t for t in overrides if t.lstrip("+~").startswith("agent.pbt.") and not t.lstrip("+~").startswith("agent.pbt.enabled")]
    if not pbt.enabled:
        if given:
            raise UsageError(f"agent.pbt.enabled: is False, so {given[0].split('=')[0].lstrip('+~')} would be ignored; "
                             "add agent.pbt.enabled=True to train a PBT member")
        return
    if pbt.mode not in modes:
        raise UsageError(f"agent.pbt.mode: '{pbt.mode}' is not available with this RL library, which runs "
                         f"{', '.join(modes)}; 'batched' trains rl_games' or rsl_rl's PPO (scripts/train.py, scripts/rsl_rl/train.py)")
    restart_only = [k for k in pbt.mutation if not is_live(k)]
    if pbt.apply == "in-place" and restart_only:
        raise UsageError(f"agent.pbt.apply: 'in-place' cannot change {', '.join(restart_only)} in a running agent; "
                         "use 'auto' or 'restart', or drop those keys from agent.pbt.mutation")
    directory = os.path.abspath(pbt.directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"agent.pbt.directory: {directory} is a file; it must be a folder shared by the members")
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK) or not os.path.isdir(existing):
        raise UsageError(f"agent.pbt.directory: cannot create or write {directory} ({existing} is not writable by this user)")


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
    if annotation == "dict[str, list]":
        if not isinstance(value, Mapping) or not all(isinstance(v, (list, tuple)) for v in value.values()):
            _fail(name, f"must map agent-config keys to lists of values, got {value!r}")
        for k, v in value.items():
            if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in v):
                _fail(f"{name}.{k}", f"choices must be finite numbers, got {v!r}")
        return {k: list(v) for k, v in value.items()}
    if annotation == "dict[str, tuple[float, float]]":
        if not isinstance(value, Mapping):
            _fail(name, f"must map agent-config keys to [low, high], got {value!r}")
        return {k: _coerce(f"{name}.{k}", v, "tuple[float, float]") for k, v in value.items()}
    raise AssertionError(f"no coercion for {annotation}")  # a new field without a rule above
