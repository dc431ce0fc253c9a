"""PuckPush: a vectorised pure-PyTorch pushing task whose curriculum outlasts a CPU training budget.

PointReach saturates, so every member of a population ends at the same objective and PBT has
nothing to choose between. Here a point "finger" (velocity-controlled) must push a disk-shaped puck
onto a goal and leave it there at rest. The finger only acts through contact: an overlapping puck is
pushed out along the contact normal and takes on the finger's normal velocity, then slides and stops
under Coulomb friction. Three things make the task grow harder, and each asks something different
of the learner:

* the goal distance: longer pushes mean longer horizons before the success bonus (discounting);
* the angle between the finger's approach and the push needed: past a right angle the finger must
  first walk around the puck, which costs shaping reward before it pays (exploration);
* the goal tolerance: a puck pushed at full speed slides ``v^2 / (2 mu)`` after release, so small
  tolerances demand slowing down before the goal (precision, i.e. low action noise).

Each env's curriculum level (see :mod:`.curriculum`: up on a success, down on a timeout, carried
with a donor's weights) sets all three.

The reward is a weighted sum of terms, as Isaac Lab's reward manager builds it:
``rewards={"push": {"weight": 5.0}}`` overrides a default weight, ``set_reward_weight`` changes one
while training, and ``infos["episode"]["Episode_Reward/<term>"]`` logs each weighted term's mean.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch
from rl_games.common.gym_compat import spaces

from .curriculum import CurriculumEnv

#: Reward terms and their default weights (the shipped YAML repeats them).
DEFAULT_REWARD_WEIGHTS = {
    "reach": 1.0,  # progress of the finger towards the puck
    "push": 5.0,  # progress of the puck towards the goal
    "success": 10.0,  # once, when the puck rests within tolerance of the goal
    "action_l2": -0.01,  # squared action norm
}


class PuckPushEnv(CurriculumEnv):
    """``num_envs`` finger-pushes-puck tasks stepped together as tensors."""

    def __init__(
        self,
        num_envs: int,
        device: str = "cpu",
        seed: Optional[int] = None,
        num_blocks: int = 1,
        rewards: Optional[Mapping[str, Mapping[str, float]]] = None,
        max_level: int = 100,
        max_episode_steps: int = 100,
        dt: float = 0.1,
        max_speed: float = 1.0,
        friction: float = 2.0,
        finger_radius: float = 0.05,
        puck_radius: float = 0.1,
        start_distance: float = 0.4,
        min_goal_distance: float = 0.2,
        max_goal_distance: float = 3.0,
        max_tolerance: float = 0.15,
        min_tolerance: float = 0.03,
        success_speed: float = 0.1,
        **unused: Any,
    ):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_level = max_level
        self.max_episode_steps = max_episode_steps
        self.dt = dt
        self.max_speed = max_speed
        self.friction = friction
        self.contact_distance = finger_radius + puck_radius
        self.start_distance = start_distance
        self.min_goal_distance = min_goal_distance
        self.max_goal_distance = max_goal_distance
        self.max_tolerance = max_tolerance
        self.min_tolerance = min_tolerance
        self.success_speed = success_speed
        self.reward_weights = dict(DEFAULT_REWARD_WEIGHTS)
        for term, cfg in (rewards or {}).items():
            self.set_reward_weight(term, cfg["weight"])
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(0 if seed is None else int(seed))
        n, dev = num_envs, self.device
        self.finger = torch.zeros(n, 2, device=dev)
        self.finger_vel = torch.zeros(n, 2, device=dev)
        self.puck = torch.zeros(n, 2, device=dev)
        self.puck_vel = torch.zeros(n, 2, device=dev)
        self.goal = torch.zeros(n, 2, device=dev)
        self.tolerance = torch.full((n,), max_tolerance, device=dev)
        self.steps = torch.zeros(n, dtype=torch.long, device=dev)
        self._init_curriculum(num_blocks)
        self.observation_space = spaces.Box(-math.inf, math.inf, (9,))
        self.action_space = spaces.Box(-1.0, 1.0, (2,))

    def set_reward_weight(self, term: str, value: float) -> None:
        """Change the weight of reward term ``term``; it applies from the next step on."""
        if term not in self.reward_weights:
            raise KeyError(f"unknown reward term {term!r}; known terms: {', '.join(self.reward_weights)}")
        self.reward_weights[term] = float(value)

    def step(self, actions: torch.Tensor):
        actions = actions.to(self.device).clamp(-1.0, 1.0)
        reach_before = (self.puck - self.finger).norm(dim=1)
        push_before = (self.goal - self.puck).norm(dim=1)
        self._simulate(actions)
        self.steps += 1
        reach_after = (self.puck - self.finger).norm(dim=1)
        push_after = (self.goal - self.puck).norm(dim=1)
        success = (push_after < self.tolerance) & (self.puck_vel.norm(dim=1) < self.success_speed)
        timeout = (self.steps >= self.max_episode_steps) & ~success
        terms = {
            "reach": reach_before - reach_after,
            "push": push_before - push_after,
            "success": success.float(),
            "action_l2": actions.square().sum(dim=1),
        }
        weighted = {term: self.reward_weights[term] * value for term, value in terms.items()}
        reward = sum(weighted.values())
        done = success | timeout

        episode = {**self._finish(success, timeout), "Metrics/success_rate": self.success_rate.clone()}
        episode.update({f"Episode_Reward/{term}": self.block_mean(value) for term, value in weighted.items()})
        infos = {"episode": episode, "time_outs": timeout}
        return self._obs(), reward, done, infos

    # -- internals ----------------------------------------------------------------------------
    def _simulate(self, actions: torch.Tensor) -> None:
        """One step: the finger moves, the puck slides under friction, then contact pushes the puck out."""
        self.finger_vel = self.max_speed * actions
        self.finger = self.finger + self.dt * self.finger_vel
        speed = self.puck_vel.norm(dim=1, keepdim=True)
        slowed = (speed - self.friction * self.dt).clamp(min=0.0)
        self.puck_vel = self.puck_vel * (slowed / speed.clamp(min=1e-9))
        self.puck = self.puck + self.dt * self.puck_vel
        offset = self.puck - self.finger
        dist = offset.norm(dim=1, keepdim=True).clamp(min=1e-6)
        normal = offset / dist
        contact = (dist < self.contact_distance).float()
        self.puck = self.puck + contact * (self.contact_distance - dist) * normal
        approach = ((self.finger_vel - self.puck_vel) * normal).sum(dim=1, keepdim=True).clamp(min=0.0)
        self.puck_vel = self.puck_vel + contact * approach * normal

    def _reset(self, ids: torch.Tensor) -> None:
        """New episodes for ``ids`` at their current levels: farther, wider-angled and tighter goals as levels rise."""
        n, dev = ids.numel(), self.device
        frac = self.level[ids].float() / self.max_level
        heading = torch.rand(n, generator=self.gen, device=dev) * 2 * math.pi
        turn = (2 * torch.rand(n, generator=self.gen, device=dev) - 1) * math.pi * frac
        goal_distance = self.min_goal_distance + frac * (self.max_goal_distance - self.min_goal_distance)
        puck = self.start_distance * torch.stack([heading.cos(), heading.sin()], dim=1)
        push = torch.stack([(heading + turn).cos(), (heading + turn).sin()], dim=1)
        self.finger[ids] = 0.0
        self.finger_vel[ids] = 0.0
        self.puck[ids] = puck
        self.puck_vel[ids] = 0.0
        self.goal[ids] = puck + goal_distance.unsqueeze(1) * push
        self.tolerance[ids] = self.max_tolerance - frac * (self.max_tolerance - self.min_tolerance)
        self.steps[ids] = 0

    def _obs(self) -> torch.Tensor:
        level = (self.level.float() / self.max_level).unsqueeze(1)
        return torch.cat([self.puck - self.finger, self.goal - self.puck, self.finger_vel, self.puck_vel, level], dim=1)
