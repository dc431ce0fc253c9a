"""An rsl_rl ``OnPolicyRunner`` as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

The tick hooks in after PPO's update (``alg.update``), at the iteration boundary and before the
next rollout; the objective is read from the extras PPO receives at every env step
(``alg.process_env_step``). Both hooks wrap the methods of this one algorithm instance, so
rsl_rl's own ``learn()`` loop runs unchanged.

A hyperparameter has one name from the agent YAML to the live algorithm: an rsl_rl agent config
keeps PPO's settings under ``algorithm:``, and ``rsl_rl.algorithms.PPO`` stores each as an
attribute of the same name that its loop reads at every update, so the whitelist key
``agent.algorithm.<name>`` is ``alg.<name>``. The learning rate is the one value kept twice (the
attribute, which the adaptive schedule moves, and the optimiser's param groups, which the fixed
schedule never rewrites): :func:`write` sets both.
"""

from __future__ import annotations

import glob
import os
from typing import Any, BinaryIO, Mapping, Optional

import torch

from . import state

PREFIX = "agent.algorithm."

#: PPO attributes read at every update or env step: changing them in a live learner takes effect at once.
LIVE = frozenset({
    "learning_rate", "entropy_coef", "clip_param", "gamma", "lam", "value_loss_coef",
    "max_grad_norm", "desired_kl", "num_learning_epochs", "num_mini_batches",
})
#: Integer settings (the YAML may give them as floats after a mutation).
INTEGERS = frozenset({"num_learning_epochs", "num_mini_batches"})


def default_mutation(algorithm_cfg: Mapping[str, Any]) -> dict[str, str]:
    """The whitelist for an agent config without a ``pbt:`` block (an Isaac Lab task's own rsl_rl config).

    Under the adaptive schedule rsl_rl rewrites the learning rate from the measured KL after every
    minibatch, so the knob PBT can own is the KL target, ``desired_kl``; under the fixed schedule
    it is the learning rate itself.
    """
    step = "desired_kl" if algorithm_cfg.get("schedule") == "adaptive" else "learning_rate"
    return {
        PREFIX + step: "mutate_float",
        PREFIX + "entropy_coef": "mutate_float",
        PREFIX + "value_loss_coef": "mutate_float",
        PREFIX + "max_grad_norm": "mutate_float",
        PREFIX + "gamma": "mutate_discount",
        PREFIX + "lam": "mutate_discount",
        PREFIX + "clip_param": "mutate_clip",
    }


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


#: The override that makes a restarted process train on in the same run folder.
RUN_DIR_KEY = "+agent.pbt_run_dir"
#: Newest ``pbt_*.pt`` restart copies kept in the run folder (rsl_rl's own ``model_*.pt`` stay).
KEEP_PBT_COPIES = 2


class RslRlLearner:
    """Frames, live hyperparameters and full states of one rsl_rl learner (see :class:`~isaaclab_pbt.core.member.Learner`)."""

    library = "rsl_rl"

    def __init__(self, runner: Any, max_iterations: int, run_dir: str, done_iterations: int = 0):
        self.runner = runner
        self.max_iterations = int(max_iterations)
        self.run_dir = run_dir
        self.done_iterations = int(done_iterations)
        self.member: Optional[Any] = None

    def attach(self, member: Any) -> None:
        """Call ``member.end_of_iteration`` after every PPO update and ``member.observe`` at every env step."""
        self.member = member
        alg = self.runner.alg
        update, process_env_step = alg.update, alg.process_env_step

        def update_then_tick():
            losses = update()
            self.done_iterations += 1
            member.end_of_iteration()
            return losses

        def process_and_observe(obs, rewards, dones, extras):
            process_env_step(obs, rewards, dones, extras)
            member.observe(extras)

        alg.update, alg.process_env_step = update_then_tick, process_and_observe

    # -- the Learner protocol -------------------------------------------------------------------
    def iteration_frames(self) -> int:
        return int(self.runner.cfg["num_steps_per_env"]) * int(self.runner.env.num_envs)

    def frames(self) -> int:
        return self.done_iterations * self.iteration_frames()

    def read(self, key: str, config_value: Any) -> Any:
        return read(self.runner.alg, key, config_value)

    def is_live(self, key: str) -> bool:
        return is_live(key)

    def write(self, values: Mapping[str, Any]) -> None:
        write(self.runner.alg, values)

    def snapshot(self) -> dict:
        return {**state.training_state(self.runner), "iter": self.done_iterations}

    def save(self, training_state: dict, f: BinaryIO) -> None:
        torch.save(training_state, f)

    def load(self, source: str | BinaryIO) -> dict:
        return torch.load(source, map_location="cpu", weights_only=True)

    def misfit(self, training_state: Any) -> Optional[str]:
        return state.misfit(self.runner, training_state)

    def load_into(self, training_state: dict) -> None:
        state.load_into(self.runner, training_state)

    def digest(self, training_state: dict) -> str:
        return state.digest(training_state)

    def budget_spent(self) -> bool:
        return self.done_iterations >= self.max_iterations

    def restart_state(self, training_state: dict) -> dict:
        return {**training_state, "iter": self.done_iterations}

    def run_overrides(self) -> dict[str, Any]:
        return {RUN_DIR_KEY: self.run_dir}

    def save_restart(self, training_state: dict, name: str) -> str:
        """``<run folder>/<name>.pt``, rsl_rl's checkpoint layout; only the newest PBT copies are kept."""
        os.makedirs(self.run_dir, exist_ok=True)
        path = os.path.join(self.run_dir, name + ".pt")
        torch.save(training_state, path)
        for old in sorted(glob.glob(os.path.join(glob.escape(self.run_dir), "pbt_*.pt")), key=os.path.getmtime)[:-KEEP_PBT_COPIES]:
            os.unlink(old)
        return path

    def scalar(self, name: str, value: float, frame: int) -> None:
        writer = getattr(self.runner.logger, "writer", None)
        if writer is not None:
            writer.add_scalar(name, value, frame)

    def before_exec(self) -> None:
        writer = getattr(self.runner.logger, "writer", None)
        if writer is not None:
            writer.flush()
