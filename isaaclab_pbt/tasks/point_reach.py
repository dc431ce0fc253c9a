"""PointReach: a vectorised pure-PyTorch task with a Dexsuite-style curriculum, for CPU machines.

A point mass with damped velocity must come to rest on a goal within ``max_episode_steps``. Each env has its
own difficulty level: the goal distance grows with it, a success moves the env one level up and a
timeout one level down, like Dexsuite's adaptive curriculum. ``infos["episode"]["Curriculum/adr"]``
reports the mean level in ``[0, 1]`` (the same key Dexsuite logs), which makes it the natural PBT
objective: a learner that stalls stays at low levels while a good one climbs.

The levels are the env state that rl_games saves with a checkpoint, so a member that copies a
leader's weights also continues at the leader's curriculum.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from rl_games.common.gym_compat import spaces
from rl_games.common.ivecenv import IVecEnv


class PointReachEnv(IVecEnv):
    """``num_envs`` point-mass reaching tasks stepped together as tensors."""

    def __init__(
        self,
        num_envs: int,
        device: str = "cpu",
        seed: Optional[int] = None,
        max_level: int = 50,
        max_episode_steps: int = 60,
        min_goal_distance: float = 0.3,
        max_goal_distance: float = 3.0,
        success_radius: float = 0.1,
        success_speed: float = 0.3,
        dt: float = 0.1,
        **unused: Any,
    ):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_level = max_level
        self.max_episode_steps = max_episode_steps
        self.min_goal_distance = min_goal_distance
        self.max_goal_distance = max_goal_distance
        self.success_radius = success_radius
        self.success_speed = success_speed
        self.dt = dt
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(0 if seed is None else int(seed))
        n, dev = num_envs, self.device
        self.pos = torch.zeros(n, 2, device=dev)
        self.vel = torch.zeros(n, 2, device=dev)
        self.goal = torch.zeros(n, 2, device=dev)
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.level = torch.zeros(n, dtype=torch.long, device=dev)
        self.success_rate = torch.zeros((), device=dev)  # moving average over finished episodes
        self.observation_space = spaces.Box(-math.inf, math.inf, (5,))
        self.action_space = spaces.Box(-1.0, 1.0, (2,))

    # -- rl_games IVecEnv ------------------------------------------------------------------------
    def get_env_info(self) -> dict:
        return {"observation_space": self.observation_space, "action_space": self.action_space, "agents": 1, "value_size": 1}

    def get_number_of_agents(self) -> int:
        return 1

    def reset(self) -> torch.Tensor:
        self._reset(torch.arange(self.num_envs, device=self.device))
        return self._obs()

    def step(self, actions: torch.Tensor):
        actions = actions.to(self.device).clamp(-1.0, 1.0)
        dist_before = (self.goal - self.pos).norm(dim=1)
        self.vel = 0.9 * self.vel + 2.0 * self.dt * actions
        self.pos = self.pos + self.dt * self.vel
        self.steps += 1
        dist = (self.goal - self.pos).norm(dim=1)
        success = (dist < self.success_radius) & (self.vel.norm(dim=1) < self.success_speed)
        timeout = (self.steps >= self.max_episode_steps) & ~success
        reward = 10.0 * (dist_before - dist) + 10.0 * success.float() - 0.01
        done = success | timeout

        self.level = torch.where(success, (self.level + 1).clamp(max=self.max_level), self.level)
        self.level = torch.where(timeout, (self.level - 1).clamp(min=0), self.level)
        finished = done.nonzero(as_tuple=False).squeeze(1)
        if finished.numel() > 0:
            self.success_rate = 0.9 * self.success_rate + 0.1 * success[finished].float().mean()
            self._reset(finished)
        # the same keys at every step, as Isaac Lab's extras["log"]: a float and a 0-dim tensor
        episode = {"Curriculum/adr": self.level.float().mean().item() / self.max_level, "Episode_Reward/success": self.success_rate.clone()}
        infos = {"episode": episode, "time_outs": timeout}
        return self._obs(), reward, done, infos

    def get_env_state(self) -> dict:
        """The curriculum: per-env levels, saved into rl_games checkpoints."""
        return {"level": self.level.detach().cpu().clone()}

    def set_env_state(self, env_state: Optional[dict]) -> None:
        """Continue at a checkpoint's curriculum; a different env count draws levels from the saved ones."""
        if not env_state or "level" not in env_state:
            return
        saved = torch.as_tensor(env_state["level"], dtype=torch.long).flatten().clamp(0, self.max_level)
        if saved.numel() == 0:
            return
        if saved.numel() != self.num_envs:
            saved = saved[torch.randint(saved.numel(), (self.num_envs,), generator=torch.Generator().manual_seed(0))]
        self.level = saved.to(self.device)

    # -- internals ----------------------------------------------------------------------------
    def _reset(self, ids: torch.Tensor) -> None:
        n = ids.numel()
        frac = self.level[ids].float() / self.max_level
        radius = self.min_goal_distance + frac * (self.max_goal_distance - self.min_goal_distance)
        angle = torch.rand(n, generator=self.gen, device=self.device) * 2 * math.pi
        self.pos[ids] = 0.0
        self.vel[ids] = 0.0
        self.goal[ids] = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        self.steps[ids] = 0

    def _obs(self) -> torch.Tensor:
        level = (self.level.float() / self.max_level).unsqueeze(1)
        return torch.cat([self.goal - self.pos, self.vel, level], dim=1)
