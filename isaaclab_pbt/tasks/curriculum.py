"""What the embedded tasks share: rl_games' vec-env interface around a Dexsuite-style per-env curriculum.

Each env has a difficulty level in ``[0, max_level]``: a success moves it one level up and a
timeout one level down. ``infos["episode"]["Curriculum/adr"]`` is the mean level over
``max_level`` (the key Dexsuite logs, and the PBT objective). The levels are the env state that
rl_games saves with a checkpoint, so a member that copies a donor's weights also continues at the
donor's curriculum.

With ``num_blocks > 1`` (a whole population on one env, ``agent.pbt.mode=shared``) the envs form
that many contiguous blocks, one per learner, and every episode log value is a tensor with one
entry per block, computed over that block's envs only: a learner's objective never mixes in
another's episodes.
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
    num_blocks: int = 1

    def _init_curriculum(self, num_blocks: int = 1) -> None:
        if num_blocks < 1 or self.num_envs % num_blocks:
            raise ValueError(f"num_blocks: {num_blocks} blocks cannot split {self.num_envs} envs evenly")
        self.num_blocks = num_blocks
        self.level = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        # moving average over finished episodes, one per block
        self.success_rate = torch.zeros(() if num_blocks == 1 else (num_blocks,), device=self.device)

    def block_mean(self, per_env: torch.Tensor) -> torch.Tensor:
        """The mean over all envs (0-dim), or with several blocks the mean over each block's envs (one entry per block)."""
        if self.num_blocks == 1:
            return per_env.float().mean()
        return per_env.float().view(self.num_blocks, -1).mean(dim=1)

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
        ended = success | timeout
        finished = ended.nonzero(as_tuple=False).squeeze(1)
        if finished.numel() > 0:
            if self.num_blocks == 1:
                self.success_rate = 0.9 * self.success_rate + 0.1 * success[finished].float().mean()
            else:  # each block's average moves only with its own finished episodes
                count = ended.view(self.num_blocks, -1).sum(dim=1)
                hits = (success & ended).view(self.num_blocks, -1).sum(dim=1)
                moved = 0.9 * self.success_rate + 0.1 * hits / count.clamp(min=1)
                self.success_rate = torch.where(count > 0, moved, self.success_rate)
            self._reset(finished)
        # the same keys at every step, as Isaac Lab's extras["log"]: a float and a 0-dim tensor
        if self.num_blocks == 1:
            return {"Curriculum/adr": self.level.float().mean().item() / self.max_level}
        return {"Curriculum/adr": self.block_mean(self.level) / self.max_level}

    def _reset(self, ids: torch.Tensor) -> None:
        raise NotImplementedError

    def _obs(self) -> torch.Tensor:
        raise NotImplementedError
