"""What every library's batched population (``agent.pbt.mode=batched``) shares: per-lane Adam, per-lane gradient clip, the tick.

A batched population holds member ``i`` as lane ``i`` of every tensor. The optimiser arithmetic
is the same whatever the library: ``torch.optim.Adam`` (which rl_games and rsl_rl both use) and
``clip_grad_norm_`` computed lane by lane, each lane with its own learning rate, step count and
norm, so that no member's update depends on another's. Only tensors go in: no RL library is imported.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Callable, Hashable, Mapping, Optional, Sequence

import torch

from ..core.errors import UsageError

#: torch.optim.Adam's defaults, which rl_games (``eps=1e-8``) and rsl_rl's ``optimizer: adam`` use.
BETAS, EPS = (0.9, 0.999), 1e-8


def _lane_shape(t: torch.Tensor) -> tuple[int, ...]:
    return (-1, *[1] * (t.dim() - 1))


class LaneAdam:
    """``torch.optim.Adam`` for tensors with a leading lane axis: one learning rate and one step count per lane.

    Args:
        params: the trainable tensors by key, each ``[lanes, ...]``.
        lanes: how many lanes.
    """

    def __init__(self, params: Mapping[Hashable, torch.Tensor], lanes: int):
        self.params = dict(params)
        self.moments = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in self.params.items()}
        device = next(iter(self.params.values())).device
        self.steps = torch.zeros(lanes, device=device)

    @torch.no_grad()
    def step(self, grads: Mapping[Hashable, torch.Tensor], lr: torch.Tensor, active: torch.Tensor) -> None:
        """Adam's step for every lane where ``active`` is true, with that lane's ``lr``; inactive lanes stay as they are."""
        (b1, b2), every = BETAS, bool(active.all())
        steps = self.steps + active
        bc1, bc2 = 1.0 - b1 ** steps.clamp(min=1), (1.0 - b2 ** steps.clamp(min=1)).sqrt()
        for key, g in grads.items():
            p, (m, v) = self.params[key], self.moments[key]
            shape = _lane_shape(g)
            new_m, new_v = m * b1 + g * (1 - b1), v * b2 + g * g * (1 - b2)
            update = (lr / bc1).view(shape) * new_m / (new_v.sqrt() / bc2.view(shape) + EPS)
            if not every:
                keep = active.view(shape)
                new_m, new_v, update = torch.where(keep, new_m, m), torch.where(keep, new_v, v), update * keep
            m.copy_(new_m)
            v.copy_(new_v)
            p.sub_(update)
        self.steps = steps

    def lane(self, key: Hashable, i: int) -> Optional[dict]:
        """Lane ``i``'s entry for ``key`` in ``torch.optim.Adam.state_dict()`` form (``None`` before its first step)."""
        step = float(self.steps[i])
        if step <= 0:
            return None
        m, v = self.moments[key]
        return {"step": torch.tensor(step), "exp_avg": m[i].detach().to("cpu", copy=True),
                "exp_avg_sq": v[i].detach().to("cpu", copy=True)}

    @torch.no_grad()
    def set_lane(self, i: int, entries: Mapping[Hashable, Optional[dict]]) -> None:
        """Put a saved Adam state (``key -> entry``, an entry ``None`` before the first step) into lane ``i``."""
        step = 0.0
        for key, (m, v) in self.moments.items():
            entry = entries.get(key)
            m[i] = 0.0 if entry is None else entry["exp_avg"].to(m)
            v[i] = 0.0 if entry is None else entry["exp_avg_sq"].to(v)
            step = step if entry is None else float(entry["step"])
        self.steps[i] = step


def clip_lanes(grads: dict[Hashable, torch.Tensor], keys: Sequence[Hashable], max_norm: torch.Tensor) -> None:
    """``clip_grad_norm_`` over ``keys`` of ``grads``, in place, each lane with its own total norm and ``max_norm``."""
    norm = torch.stack([grads[k].flatten(1).pow(2).sum(dim=1) for k in keys]).sum(dim=0).sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for k in keys:
        grads[k] = grads[k] * coef.view(_lane_shape(grads[k]))


def tick(members: Sequence[Any], abort: Callable[[], None]) -> None:
    """Every member's PBT step, each in its own thread: at an interval boundary they wait for one another in the exchange.

    When one fails, ``abort`` releases the others, and the failure itself (not a release) is raised.
    """
    with ThreadPoolExecutor(len(members), thread_name_prefix="pbt-member") as pool:
        futures = [pool.submit(member.end_of_iteration) for member in members]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            abort()
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise sorted(errors, key=lambda e: isinstance(e, threading.BrokenBarrierError))[0]


def first_difference(a: Any, b: Any, path: str) -> Optional[str]:
    """The dotted path of the first place where two nested configs differ (``None`` when they are equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    return None if a == b else path


class InPlaceLane:
    """What every library's lane learner answers alike: a batched population changes hyperparameters in place only."""

    def restart_state(self, training_state: dict) -> dict:
        raise UsageError("agent.pbt.apply: a batched population changes hyperparameters in place only")

    def run_overrides(self) -> dict[str, Any]:
        raise UsageError("agent.pbt.apply: a batched population changes hyperparameters in place only")

    def save_restart(self, training_state: dict, name: str) -> str:
        raise UsageError("agent.pbt.apply: a batched population changes hyperparameters in place only")

    def before_exec(self) -> None:
        pass
