"""What the embedded tasks share: rl_games' vec-env interface around a Dexsuite-style per-env curriculum.

Each env has a difficulty level in ``[0, max_level]``: a success moves it one level up and a
timeout one level down. ``infos["episode"]["Curriculum/adr"]`` is the mean level over
``max_level`` (the key Dexsuite logs, and the PBT objective). The levels are the env state that
rl_games saves with a checkpoint, so a member that copies a donor's weights also continues at the
donor's curriculum.
"""

from __future__ import annotations

from typing import Optional

import torch
from rl_games.common.ivecenv import IVecEnv


class CurriculumEnv(IVecEnv):
    """Base of the embedded tasks: subclasses set up their tensors and define ``step``, ``_reset`` and ``_obs``.

    A subclass sets ``num_envs``, ``device``, ``gen`` (a seeded generator on ``device``),
    ``max_level``, ``observation_space`` and ``action_space``, then calls :meth:`_init_curriculum`.
    """

    num_envs: int
    device: torch.device
    gen: torch.Generator
    max_level: int

    def _init_curriculum(self) -> None:
        self.level = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.success_rate = torch.zeros((), device=self.device)  # moving average over finished episodes

    # -- rl_games IVecEnv ------------------------------------------------------------------------
    def get_env_info(self) -> dict:
        return {"observation_space": self.observation_space, "action_space": self.action_space, "agents": 1, "value_size": 1}

    def get_number_of_agents(self) -> int:
        return 1

    def reset(self) -> torch.Tensor:
        self._reset(torch.arange(self.num_envs, device=self.device))
        return self._obs()

    def get_env_state(self) -> dict:
        """The curriculum: per-env levels, saved into rl_games checkpoints."""
        return {"level": self.level.detach().cpu().clone()}

    def set_env_state(self, env_state: Optional[dict]) -> None:
        """Continue at a checkpoint's curriculum; a different env count draws levels from the saved ones."""
        if not env_state or "level" not in env_state:
            return
        saved = torch.as_tensor(env_state["level"], dtype=torch.long).flatten().clamp(0, self.max_level).to(self.device)
        if saved.numel() == 0:
            return
        if saved.numel() != self.num_envs:
            saved = saved[torch.randint(saved.numel(), (self.num_envs,), generator=self.gen, device=self.device)]
        self.level = saved

    # -- for subclasses ---------------------------------------------------------------------------
    def _finish(self, success: torch.Tensor, timeout: torch.Tensor) -> dict:
        """Move levels, start new episodes where one ended, and return the curriculum's log entries."""
        self.level = torch.where(success, (self.level + 1).clamp(max=self.max_level), self.level)
        self.level = torch.where(timeout, (self.level - 1).clamp(min=0), self.level)
        finished = (success | timeout).nonzero(as_tuple=False).squeeze(1)
        if finished.numel() > 0:
            self.success_rate = 0.9 * self.success_rate + 0.1 * success[finished].float().mean()
            self._reset(finished)
        # the same keys at every step, as Isaac Lab's extras["log"]: a float and a 0-dim tensor
        return {"Curriculum/adr": self.level.float().mean().item() / self.max_level}

    def _reset(self, ids: torch.Tensor) -> None:
        raise NotImplementedError

    def _obs(self) -> torch.Tensor:
        raise NotImplementedError
