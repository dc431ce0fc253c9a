"""PointReach: a vectorised pure-PyTorch task with a Dexsuite-style curriculum, for CPU machines.

A point mass with damped velocity must come to rest on a goal within ``max_episode_steps``; the
goal distance grows with the env's curriculum level (see :mod:`.curriculum`). A learner that stalls
stays at low levels while a good one climbs, but every reasonable learner reaches the top within a
few hundred thousand frames: a task to check that PBT rescues a broken member, not one on which
hyperparameters decide the outcome (that is :mod:`.puck_push`).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from rl_games.common.gym_compat import spaces

from .curriculum import CurriculumEnv


class PointReachEnv(CurriculumEnv):
    """``num_envs`` point-mass reaching tasks stepped together as tensors."""

    def __init__(
        self,
        num_envs: int,
        device: str = "cpu",
        seed: Optional[int] = None,
        num_blocks: int = 1,
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
        self._init_curriculum(num_blocks)
        self.observation_space = spaces.Box(-math.inf, math.inf, (5,))
        self.action_space = spaces.Box(-1.0, 1.0, (2,))

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

        episode = {**self._finish(success, timeout), "Episode_Reward/success": self.success_rate.clone()}
        infos = {"episode": episode, "time_outs": timeout}
        return self._obs(), reward, done, infos

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
