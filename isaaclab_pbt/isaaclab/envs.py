"""Everything that differs between Isaac Lab 2.3 and 3.0, in one place.

* starting the simulator: ``AppLauncher`` before any task import on 2.3; on 3.0,
  ``launch_simulation`` around the env's creation (kit-less with Newton when Isaac Sim is absent);
* env and agent configs: the ``hydra_task_config`` decorator on 2.3, ``resolve_task_config`` on 3.0;
* ``env.*`` overrides: Hydra through ``sys.argv`` on 2.3, passed as ``overrides`` on 3.0.

Also here, as no RL library is involved: the curriculum state that a PBT donor hands over. Each
RL library's wrapper around an Isaac Lab env lives in its own folder (``rl_games/isaaclab_env.py``,
``rsl_rl/isaaclab_env.py``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from ..core.agent_config import dump_yaml
from ..core.errors import UsageError


def dump_config(path: str, cfg: Any) -> None:
    """Write an env config to ``path``: an embedded task's dict as safe YAML, an Isaac Lab configclass as Isaac Lab writes it."""
    if isinstance(cfg, dict):
        return dump_yaml(path, cfg)
    from isaaclab.utils.io import dump_yaml as dump_isaaclab

    dump_isaaclab(path, cfg)


def add_app_launcher_args(parser: Any) -> None:
    """Add Isaac Lab's AppLauncher flags (``--livestream``, ``--enable_cameras``, ``--kit_args``, ...) where Isaac Lab has them.

    Imports only ``isaaclab.app``, so it is safe before the simulator starts; without Isaac Lab it adds nothing.
    """
    try:
        from isaaclab.app import AppLauncher
    except ImportError:
        return
    add = getattr(AppLauncher, "add_app_launcher_args", None)
    if callable(add):
        add(parser)


def split_env_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(env.* tokens, the rest)``: on Isaac Lab the first go to its Hydra, the others are applied by us."""
    env_tokens = [t for t in overrides if t.lstrip("+").startswith("env.")]
    return env_tokens, [t for t in overrides if t not in env_tokens]


@contextlib.contextmanager
def isaaclab_task(task: str, agent_entry: str, env_overrides: Sequence[str],
                  args: Any) -> Iterator[tuple[Any, dict, Callable[..., Any]]]:
    """Resolve the task's env config and agent config and run the simulator for the block.

    ``args`` are the parsed command-line flags (``--headless``, ``--device``, ``--video`` and, on
    2.3, every AppLauncher flag, handed to AppLauncher as Isaac Lab's own scripts do). Yields
    ``(env_cfg, agent_cfg, make_env)``; ``make_env(env_cfg, **gym_kwargs)`` creates the gym
    environment once the caller has finished editing ``env_cfg``.
    """
    from .registration import isaaclab_major  # importing it registers our configs, which needs Isaac Lab's tasks

    major = isaaclab_major()
    if major is None:
        raise UsageError(f"--task: '{task}' is an Isaac Lab task, but Isaac Lab is not installed in this Python")
    if getattr(args, "video", False):
        args.enable_cameras = True  # rendering offscreen needs the cameras on
    if major >= 3:
        with _isaaclab3(task, agent_entry, env_overrides, args) as result:
            yield result
    else:
        with _isaaclab2(task, agent_entry, env_overrides, args) as result:
            yield result


@contextlib.contextmanager
def _isaaclab3(task, agent_entry, env_overrides, args):
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import resolve_task_config

    from . import registration

    registration.register()
    env_cfg, agent_cfg = resolve_task_config(task, agent_entry, overrides=list(env_overrides))
    device = getattr(args, "device", None)
    if device is not None:
        env_cfg.sim.device = device
    with launch_simulation(env_cfg, args):  # every launcher flag the user gave, as Isaac Lab's scripts pass them
        yield env_cfg, agent_cfg, lambda cfg, **kwargs: gym.make(task, cfg=cfg, **kwargs)


@contextlib.contextmanager
def _isaaclab2(task, agent_entry, env_overrides, args):  # pragma: no cover - needs Isaac Sim
    from isaaclab.app import AppLauncher

    device = getattr(args, "device", None)
    app = AppLauncher(args).app  # every AppLauncher flag the user gave; must run before any isaaclab_tasks import
    try:
        import gymnasium as gym
        import isaaclab_tasks  # noqa: F401
        from isaaclab_tasks.utils.hydra import hydra_task_config

        from . import registration

        registration.register()
        resolved = {}
        saved_argv, sys.argv = sys.argv, [sys.argv[0], *env_overrides]
        try:
            hydra_task_config(task, agent_entry)(lambda env_cfg, agent_cfg: resolved.update(env=env_cfg, agent=agent_cfg))()
        finally:
            sys.argv = saved_argv
        env_cfg = resolved["env"]
        if device is not None:
            env_cfg.sim.device = device
        yield env_cfg, resolved["agent"], lambda cfg, **kwargs: gym.make(task, cfg=cfg, **kwargs)
    finally:
        app.close()


def curriculum_terms(env: Any) -> dict[str, Any]:
    """The env's class-based curriculum terms that can save and restore their state, by name.

    Isaac Lab's RL wrappers save no env state, so a member that copies a leader would restart the
    curriculum at zero while its objective is the curriculum level. The hook used here is Isaac
    Lab's: every curriculum term that has ``get_state()`` and ``set_state(tensor)`` (such as
    ``DifficultyScheduler``, Dexsuite's ``adr`` term). Tasks without such terms carry no env state.
    """
    manager = getattr(env.unwrapped, "curriculum_manager", None)
    if manager is None:
        return {}
    terms = {}
    for name in manager.active_terms:
        func = getattr(manager.cfg, name).func  # the term's instance once the manager is built
        if callable(getattr(func, "get_state", None)) and callable(getattr(func, "set_state", None)):
            terms[name] = func
    return terms


def get_curriculum_state(env: Any) -> Optional[dict]:
    """``{"curriculum": {term: CPU tensor}}``, or ``None`` when the env has no such terms."""
    state = {name: term.get_state().detach().cpu().clone() for name, term in curriculum_terms(env).items()}
    return {"curriculum": state} if state else None


def set_curriculum_state(env: Any, env_state: Optional[dict]) -> None:
    """Restore what :func:`get_curriculum_state` returned; a donor with another env count is resampled."""
    saved = (env_state or {}).get("curriculum") or {}
    for name, term in curriculum_terms(env).items():
        if name not in saved:
            continue
        value = torch.as_tensor(saved[name])
        n = env.unwrapped.num_envs
        if value.shape[:1] != (n,) and value.numel() > 0:
            value = value[torch.randint(value.shape[0], (n,), generator=torch.Generator().manual_seed(0))]
        term.set_state(value)


def check_one_process(args: Any, pbt: Any, is_live: Callable[[str], bool]) -> None:
    """What a one-process population on an Isaac Lab task refuses, in one line, before the simulator starts.

    The flags that record or describe one env per member, the whitelisted keys a shared env or an
    in-place population cannot change, a resume from anywhere but the workspace, and an objective
    other than a reward or termination term's episode log (the logs computed per block).
    """
    from ..shared.population import check_resume, refuse_unshareable

    for flag in ("video", "export_io_descriptors", "track"):
        if getattr(args, flag, False):
            raise UsageError(f"--{flag}: not with agent.pbt.mode={pbt.mode} yet (one env for all members); "
                             "use agent.pbt.mode=processes")
    refuse_unshareable(pbt, is_live)
    check_resume(pbt, args.checkpoint)
    if not pbt.objective.startswith(("episode.Episode_Reward/", "episode.Episode_Termination/")):
        raise UsageError(f"agent.pbt.objective: with agent.pbt.mode={pbt.mode} on an Isaac Lab task it must be a reward or "
                         f"termination term's episode log, episode.Episode_Reward/<term> or episode.Episode_Termination/<term> "
                         f"(the logs computed per block), got '{pbt.objective}'")


class BlockEpisodeLog:
    """Isaac Lab's ``Episode_Reward/<term>`` and ``Episode_Termination/<term>`` logs, computed per block of envs.

    For the one-process modes: Isaac Lab logs each reward term's episode sum averaged over the envs
    that reset at a step, over the whole env. With one block per learner, each learner must see its
    own envs' average: this wraps the reward manager's ``reset`` so that, just before Isaac Lab
    clears the sums, the same average is taken over each block's resetting envs. Isaac Lab 3 logs a
    termination term as the share of envs whose last episode it ended, which is read per block
    from the termination manager's own record of it (an Isaac Lab without that record, 2.3, keeps
    its termination logs over the whole env). :meth:`log` holds, per term, one entry per block.

    Args:
        env: the Isaac Lab env of ``num_blocks`` blocks.
        num_blocks: the learners sharing it.
        objective: the population's objective (``episode.<log>``), refused in one line unless it is
            one of the logs computed per block.
    """

    def __init__(self, env: Any, num_blocks: int, objective: Optional[str] = None):
        self.manager = env.unwrapped.reward_manager
        self.num_envs, self.num_blocks = env.unwrapped.num_envs, num_blocks
        self.seconds = float(env.unwrapped.max_episode_length_s)
        self.names = list(self.manager._term_names)
        self.values = torch.zeros(num_blocks, len(self.names), device=env.unwrapped.device)
        terminations = getattr(env.unwrapped, "termination_manager", None)
        self.last_dones = getattr(terminations, "_last_episode_dones", None)  # (envs, terms) on Isaac Lab 3
        self.termination_names = list(terminations._term_names) if self.last_dones is not None else []
        reset = self.manager.reset

        def reset_per_block(env_ids=None):
            self._record(env_ids)
            return reset(env_ids)

        self.manager.reset = reset_per_block
        if objective is not None and objective.removeprefix("episode.") not in self.log():
            raise UsageError(f"agent.pbt.objective: with the whole population in one env it must be one of the logs "
                             f"computed per block ({', '.join('episode.' + k for k in self.log())}), got '{objective}'")

    def _sums(self) -> torch.Tensor:
        sums = self.manager._episode_sum_buf  # (envs, terms) on Isaac Lab 3, a dict of per-term buffers before
        return torch.stack([sums[n] for n in self.names], dim=1) if isinstance(sums, dict) else sums

    def _record(self, env_ids: Any) -> None:
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.values.device)
        mask[slice(None) if env_ids is None or isinstance(env_ids, slice) else torch.as_tensor(env_ids, device=mask.device)] = True
        mask = mask.view(self.num_blocks, -1, 1)
        count = mask.sum(dim=1)  # (blocks, 1)
        mean = (self._sums().view(self.num_blocks, mask.shape[1], -1) * mask).sum(dim=1) / count.clamp(min=1) / self.seconds
        self.values = torch.where(count > 0, mean, self.values)

    def log(self) -> dict[str, torch.Tensor]:
        """``{"Episode_Reward/<term>": one value per block, "Episode_Termination/<term>": ...}``."""
        logs = {f"Episode_Reward/{name}": self.values[:, i].clone() for i, name in enumerate(self.names)}
        if self.termination_names:
            shares = self.last_dones.view(self.num_blocks, -1, len(self.termination_names)).float().mean(dim=1)
            logs.update({f"Episode_Termination/{name}": shares[:, i] for i, name in enumerate(self.termination_names)})
        return logs
