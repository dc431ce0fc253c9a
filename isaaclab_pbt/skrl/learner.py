"""An skrl PPO agent as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

The tick hooks in after PPO's update (``agent.update``, which ``post_interaction`` calls once every
``rollouts`` env steps), at the iteration boundary and before the next rollout; the objective is
read from the infos the trainer hands ``agent.record_transition`` at every env step. Both hooks
wrap the methods of this one agent instance, so skrl's own trainer loop (``SequentialTrainer.train``)
runs unchanged. skrl's trainer counts timesteps from 0 in every process, so a restarted member
also names its skrl checkpoints and TensorBoard steps from where its run was, not from 0.

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

import glob
import hashlib
import logging
import os
import re
import time
from typing import Any, BinaryIO, Mapping, Optional

import torch

from . import state

log = logging.getLogger("isaaclab_pbt")

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


def default_mutation(agent_section: Mapping[str, Any]) -> dict[str, str]:
    """The whitelist for an agent config without a ``pbt:`` block (an Isaac Lab task's own skrl config).

    Under the ``KLAdaptiveLR`` scheduler skrl rewrites the learning rate from the measured KL after
    every update, so the knob PBT can own is the scheduler's KL threshold; without a scheduler it is
    the learning rate itself.
    """
    adaptive = agent_section.get("learning_rate_scheduler") == "KLAdaptiveLR"
    step = "learning_rate_scheduler_kwargs.kl_threshold" if adaptive else "learning_rate"
    return {
        PREFIX + step: "mutate_float",
        PREFIX + "value_loss_scale": "mutate_float",
        PREFIX + "grad_norm_clip": "mutate_float",
        PREFIX + "discount_factor": "mutate_discount",
        PREFIX + ("lambda" if "lambda" in agent_section else "gae_lambda"): "mutate_discount",
        PREFIX + "ratio_clip": "mutate_clip",
    }


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


#: The override that makes a restarted process train on in the same run folder.
RUN_DIR_KEY = "+agent.pbt_run_dir"
#: Newest ``pbt_*.pt`` restart copies kept in ``<run folder>/checkpoints`` (skrl's own ``agent_*.pt`` stay).
KEEP_PBT_COPIES = 2


class SkrlLearner:
    """Frames, live hyperparameters and full states of one skrl PPO agent (see :class:`~isaaclab_pbt.core.member.Learner`).

    Args:
        agent: the running ``skrl.agents.torch.ppo.PPO`` (``Runner.agent``).
        env: the wrapped env it trains on (its curriculum and reward weights travel with a donor).
        max_iterations: the member's budget in PPO updates, across restarts.
        run_dir: the run folder (``agent.experiment_dir``), where restart checkpoints go.
        done_iterations: updates already trained (a resumed or restarted process).
    """

    library = "skrl"

    def __init__(self, agent: Any, env: Any, max_iterations: int, run_dir: str, done_iterations: int = 0):
        self.agent = agent
        self.env = env
        self.max_iterations = int(max_iterations)
        self.run_dir = run_dir
        self.done_iterations = int(done_iterations)
        self.member: Optional[Any] = None

    def offset_timesteps(self) -> None:
        """Name skrl's checkpoints and TensorBoard steps from the run's timestep, not this process's.

        Call once after ``done_iterations`` is known (a resumed or restarted process); a fresh run
        is unchanged.
        """
        agent, offset = self.agent, self.done_iterations * int(self.agent.cfg.rollouts)
        if offset == 0:
            return
        write_checkpoint, write_tracking_data = agent.write_checkpoint, agent.write_tracking_data
        agent.write_checkpoint = lambda *, timestep, timesteps: write_checkpoint(timestep=timestep + offset, timesteps=timesteps)
        agent.write_tracking_data = lambda *, timestep, timesteps: write_tracking_data(timestep=timestep + offset, timesteps=timesteps)

    def attach(self, member: Optional[Any] = None) -> None:
        """Count every PPO update and, for a PBT member, call ``member.end_of_iteration`` after it and ``member.observe`` at every env step.

        Without a member only the count is kept (the frames a plain run trained).
        """
        self.member = member
        agent = self.agent
        update, record_transition = agent.update, agent.record_transition

        last = [time.perf_counter()]

        def update_then_tick(*, timestep: int, timesteps: int) -> None:
            update(timestep=timestep, timesteps=timesteps)
            self.done_iterations += 1
            now = time.perf_counter()  # skrl's shipped trainer settings print nothing while training: a line per update
            log.info("skrl iteration %d/%d of %s: %.0f frames/s", self.done_iterations, self.max_iterations,
                     os.path.basename(self.run_dir), self.iteration_frames() / (now - last[0]))
            last[0] = now
            if member is not None:
                member.end_of_iteration()

        def record_and_observe(**kwargs: Any) -> None:
            record_transition(**kwargs)
            member.observe(kwargs.get("infos"))

        agent.update = update_then_tick
        if member is not None:
            agent.record_transition = record_and_observe

    # -- the Learner protocol -------------------------------------------------------------------
    def iteration_frames(self) -> int:
        """Frames of one PPO update: ``rollouts`` env steps of every env."""
        return int(self.agent.cfg.rollouts) * int(self.env.num_envs)

    def frames(self) -> int:
        """Frames trained in this run, across restarts (skrl's trainer counts only this process's timesteps)."""
        return self.done_iterations * self.iteration_frames()

    def read(self, key: str, config_value: Any) -> Any:
        """The value training uses now, read from the live agent (see :func:`read`)."""
        return read(self.agent, key, config_value, self.env)

    def is_live(self, key: str) -> bool:
        """True when the running agent reads ``key`` again (else only a restart changes it)."""
        return is_live(key, self.env)

    def write(self, values: Mapping[str, Any]) -> None:
        """Set the live keys wherever the running agent reads them (see :func:`.write`)."""
        write(self.agent, values, self.env)

    def snapshot(self) -> dict:
        """A CPU copy of the full state now: training may change the agent while a thread writes it."""
        return state.training_state(self.agent, self.env, self.done_iterations)

    def save(self, training_state: dict, f: BinaryIO) -> None:
        """Write a snapshot in skrl's checkpoint layout, which skrl's ``Agent.load`` reads."""
        torch.save(training_state, f)

    def load(self, source: str | BinaryIO) -> dict:
        """A donor's state, loaded with ``weights_only=True`` so a planted pickle runs nothing."""
        return torch.load(source, map_location="cpu", weights_only=True)

    def misfit(self, training_state: Any) -> Optional[str]:
        """Why ``training_state`` cannot replace this agent's, checked whole before any copy (see :func:`.state.misfit`)."""
        return state.misfit(self.agent, training_state)

    def load_into(self, training_state: dict) -> None:
        """Continue from a fitting donor state in the running agent, keeping this member's budget."""
        state.load_into(self.agent, training_state, self.env)

    def digest(self, training_state: dict) -> str:
        """SHA-256 of the policy's tensors, logged in the lineage to show which weights a member trains."""
        h = hashlib.sha256()
        for name, tensor in sorted(training_state["policy"].items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def budget_spent(self) -> bool:
        """True after the last PPO update of the budget: nothing is replaced then."""
        return self.done_iterations >= self.max_iterations

    def restart_state(self, training_state: dict) -> dict:
        """The state with this member's own iteration count, so a restarted process keeps its budget."""
        return {**training_state, state.PBT_KEY: {**(training_state.get(state.PBT_KEY) or {}), "iter": self.done_iterations}}

    def run_overrides(self) -> dict[str, Any]:
        """The override that makes a restarted process log into this same run folder."""
        return {RUN_DIR_KEY: self.run_dir}

    def save_restart(self, training_state: dict, name: str) -> str:
        """``<run folder>/checkpoints/<name>.pt``, next to skrl's own ``agent_*.pt``; only the newest PBT copies are kept."""
        folder = os.path.join(self.run_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name + ".pt")
        torch.save(training_state, path)
        for old in sorted(glob.glob(os.path.join(glob.escape(folder), "pbt_*.pt")), key=os.path.getmtime)[:-KEEP_PBT_COPIES]:
            os.unlink(old)
        return path

    def scalar(self, name: str, value: float, frame: int) -> None:
        """Log a ``pbt/*`` scalar into skrl's TensorBoard writer (none when skrl writes no summaries)."""
        writer = getattr(self.agent, "writer", None)
        if writer is not None:
            writer.add_scalar(tag=name, value=float(value), timestep=int(frame))

    def before_exec(self) -> None:
        """Flush skrl's TensorBoard writer: ``os.execv`` would drop its queued events."""
        writer = getattr(self.agent, "writer", None)
        if writer is not None:
            writer.flush()
