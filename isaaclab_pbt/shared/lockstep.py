"""One vectorised env, split into contiguous blocks that step together.

Each learner of a one-process population owns one block of ``envs_per_block`` envs and sees only
it: its observations, rewards, dones and infos, with episode logs restricted to its envs (the env
computes them per block, see :class:`~isaaclab_pbt.tasks.curriculum.CurriculumEnv`). A learner's
thread hands its block's actions to :meth:`LockstepEnv.step_block` and waits; the last of them to
arrive steps the whole env once, for every block, and every thread then reads its slice. The env
stays one batch of ``num_blocks x envs_per_block`` envs: one env call per step for the population,
instead of one per member.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import torch


class Blocks:
    """``env`` seen as ``num_blocks`` equal contiguous blocks of envs: each block's slice of every tensor, and its env state.

    Args:
        env: a vectorised env of ``num_blocks x envs_per_block`` envs whose episode logs hold one
            entry per block, and whose env state (``get_env_state``) holds per-env tensors.
        num_blocks: the members that share the env.
    """

    def __init__(self, env: Any, num_blocks: int):
        if env.num_envs % num_blocks:
            raise ValueError(f"num_blocks: {num_blocks} blocks cannot split {env.num_envs} envs evenly")
        self.env = env
        self.num_blocks = num_blocks
        self.envs_per_block = env.num_envs // num_blocks
        self._state_lock = threading.Lock()

    def block(self, idx: int) -> slice:
        """The envs of block ``idx``."""
        return slice(idx * self.envs_per_block, (idx + 1) * self.envs_per_block)

    def restrict(self, tree: Any, idx: int) -> Any:
        """``tree`` as block ``idx`` sees it: per-env tensors sliced, per-block tensors indexed, the rest as is."""
        if isinstance(tree, dict):
            return {k: self.restrict(v, idx) for k, v in tree.items()}
        if isinstance(tree, torch.Tensor) and tree.dim() > 0:
            if tree.shape[0] == self.env.num_envs:
                return tree[self.block(idx)]
            if tree.shape[0] == self.num_blocks:
                return tree[idx]
        return tree

    def get_block_state(self, idx: int) -> Optional[dict]:
        """Block ``idx``'s part of the env state (its curriculum), as a donor hands it over."""
        with self._state_lock:
            full = self.env.get_env_state()
        return None if full is None else self.restrict(full, idx)

    def set_block_state(self, idx: int, state: Optional[dict]) -> None:
        """Put a donor block's env state into block ``idx``, leaving every other block's as it is."""
        if not state:
            return
        with self._state_lock:  # two learners may take donors at the same tick
            full = self.env.get_env_state()
            if full is not None:
                self._merge(full, state, idx)
                self.env.set_env_state(full)

    def _merge(self, full: dict, part: dict, idx: int) -> None:
        """Write ``part``'s per-env tensors into block ``idx`` of ``full``, at any depth of nesting."""
        for key, value in part.items():
            mine = full.get(key)
            if isinstance(mine, dict) and isinstance(value, dict):
                self._merge(mine, value, idx)
            elif isinstance(mine, torch.Tensor) and mine.dim() > 0 and mine.shape[0] == self.env.num_envs:
                value = torch.as_tensor(value).to(mine)
                if value.shape[0] != self.envs_per_block:  # a donor with another block size: draw from it
                    value = value[torch.randint(value.shape[0], (self.envs_per_block,))]
                mine[self.block(idx)] = value


class LockstepEnv(Blocks):
    """``env`` split into ``num_blocks`` blocks, stepped together once every block's thread gave its actions.

    Args:
        env: as for :class:`Blocks`; its ``step(actions)`` returns ``(obs, reward, done, infos)``.
        num_blocks: learners sharing the env (one thread each).
        timeout: seconds a thread waits for the others before the population is declared stuck.
    """

    def __init__(self, env: Any, num_blocks: int, timeout: float = 600.0):
        super().__init__(env, num_blocks)
        self._actions: list[Optional[torch.Tensor]] = [None] * num_blocks
        self._barrier = threading.Barrier(num_blocks, action=self._step_all, timeout=timeout)
        self._obs = env.reset()
        self._result: Optional[tuple] = None
        self.steps = 0

    def observations(self, idx: int) -> Any:
        """Block ``idx``'s current observations (what a learner's first ``reset`` returns)."""
        return self.restrict(self._obs, idx)

    def _step_all(self) -> None:
        obs, reward, done, infos = self.env.step(torch.cat(self._actions))
        self._obs, self._result = obs, (obs, reward, done, infos)
        self.steps += 1

    def step_block(self, idx: int, actions: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor, Any]:
        """Give block ``idx``'s actions, wait for the step of all blocks, return this block's part of it."""
        self._actions[idx] = actions
        self._barrier.wait()
        obs, reward, done, infos = self._result  # stays until every thread has come back for the next step
        where = self.block(idx)
        return self.restrict(obs, idx), reward[where], done[where], self.restrict(infos, idx)

    def abort(self) -> None:
        """Release every waiting thread with an error (a learner failed: the others must not wait for ever)."""
        self._barrier.abort()
