"""rsl_rl's PPO for a whole population at once: every member's networks stacked on a leading axis, one update for all.

Why: N rsl_rl learners in N threads of one process (``agent.pbt.mode=shared``) are serialised by
the interpreter lock, and with the small networks of a robot policy the Python work of each
update, not the arithmetic, is what costs. Here member ``i`` is lane ``i`` of every tensor: one
batched matrix product (``torch.baddbmm``) runs a layer for all members, one backward pass
differentiates the sum of their losses (a lane's gradient depends on its own loss only), and
one Adam step with a learning rate per lane updates them all. The Python work is paid once per
population instead of once per member.

What stays rsl_rl's, lane by lane: the networks are built by rsl_rl's own ``MLPModel`` (so their
initialisation, activation, observation normaliser and Gaussian head are rsl_rl's) and then
stacked; the update is rsl_rl's PPO (GAE with time-out bootstrapping, advantage normalisation,
clipped surrogate and value losses, entropy bonus, one gradient-norm clip for the actor and one
for the critic, Adam, the adaptive KL schedule, the normaliser updated after the update), and a
lane's state is written in rsl_rl's checkpoint layout, so ``OnPolicyRunner.load`` and Isaac
Lab's rsl_rl ``play.py`` read it. ``tests/test_batched.py`` checks an update against rsl_rl's own.

Every hyperparameter PBT mutates in place is a tensor with one entry per lane. The structure
(network shapes, ``num_mini_batches``, ``schedule``, the optimiser) is one for the population.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from ..shared.lanes import LaneAdam, clip_lanes

#: Hyperparameters with one value per lane (``agent.algorithm.<name>``), read by every update.
PER_LANE = ("learning_rate", "entropy_coef", "clip_param", "gamma", "lam", "value_loss_coef", "max_grad_norm",
            "desired_kl", "num_learning_epochs")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class StackedNet:
    """One rsl_rl ``MLPModel`` per lane, as tensors with a leading lane axis, run for all lanes at once.

    ``tensors`` holds the models' state dicts stacked under rsl_rl's own key names
    (``mlp.0.weight`` of shape ``[lanes, out, in]``); the layer sequence is read from the first
    model, whose activation modules are applied as they are.
    """

    def __init__(self, models: list[Any]):
        import torch.nn as nn

        template = models[0]
        self.keys = list(template.state_dict())
        self.trainable = [name for name, p in template.named_parameters() if p.requires_grad]
        self.parameter_keys = [name for name, _ in template.named_parameters()]
        states = [m.state_dict() for m in models]
        self.tensors = {k: torch.stack([s[k].detach() for s in states]).clone() for k in self.keys}
        for k in self.trainable:
            self.tensors[k].requires_grad_(True)
        self.layers = [(f"mlp.{i}", None) if isinstance(m, nn.Linear) else (None, m) for i, m in enumerate(template.mlp)]
        self.normalized = bool(template.obs_normalization)
        self.norm_eps = float(template.obs_normalizer.eps) if self.normalized else 0.0
        dist = template.distribution
        self.std_type = None if dist is None else dist.std_type
        self.std_range = None if dist is None else (list(dist.std_range), list(dist.log_std_range))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP output for ``x`` of shape ``[lanes, batch, obs]`` (rsl_rl's forward, normaliser first)."""
        t = self.tensors
        if self.normalized:
            x = (x - t["obs_normalizer._mean"]) / (t["obs_normalizer._std"] + self.norm_eps)
        for prefix, activation in self.layers:
            if prefix is None:
                x = activation(x)
            else:
                x = torch.baddbmm(t[prefix + ".bias"].unsqueeze(1), x, t[prefix + ".weight"].transpose(1, 2))
        return x

    def std(self) -> torch.Tensor:
        """The Gaussian head's standard deviation, ``[lanes, 1, actions]``, clamped as rsl_rl clamps it."""
        (low, high), (log_low, log_high) = self.std_range
        if self.std_type == "scalar":
            return self.tensors["distribution.std_param"].clamp(low, high).unsqueeze(1)
        return self.tensors["distribution.log_std_param"].clamp(log_low, log_high).exp().unsqueeze(1)

    @torch.no_grad()
    def update_normalization(self, x: torch.Tensor) -> None:
        """rsl_rl's ``EmpiricalNormalization.update`` for each lane, from ``x`` of shape ``[lanes, batch, obs]``."""
        if not self.normalized:
            return
        t = self.tensors
        mean, var, count = t["obs_normalizer._mean"], t["obs_normalizer._var"], t["obs_normalizer.count"]
        mean_x, var_x = x.mean(dim=1, keepdim=True), x.var(dim=1, unbiased=False, keepdim=True)
        count += x.shape[1]
        rate = (x.shape[1] / count).view(-1, 1, 1).to(x.dtype)
        delta = mean_x - mean
        mean += rate * delta
        var += rate * (var_x - var + delta * (mean_x - mean))
        t["obs_normalizer._std"].copy_(var.sqrt())

    def lane(self, i: int) -> dict[str, torch.Tensor]:
        """Lane ``i``'s state dict, rsl_rl's layout, as CPU copies."""
        return {k: self.tensors[k][i].detach().to("cpu", copy=True) for k in self.keys}

    @torch.no_grad()
    def set_lane(self, i: int, state: dict[str, torch.Tensor]) -> None:
        for k in self.keys:
            self.tensors[k][i].copy_(state[k])


class BatchedPPO:
    """rsl_rl's PPO (feed-forward ``MLPModel`` actor and critic, Gaussian head) for ``lanes`` members at once.

    Args:
        actors, critics: one rsl_rl ``MLPModel`` per lane, built as rsl_rl builds them.
        algorithm: the ``algorithm`` settings the lanes share (``num_mini_batches``, ``schedule``,
            ``use_clipped_value_loss``, ``normalize_advantage_per_mini_batch``).
        hyperparameters: for each of :data:`PER_LANE`, one value per lane.
        envs: envs per lane; steps: env steps per rollout (``num_steps_per_env``).
        optimizer_group: the parameter group of the Adam optimiser rsl_rl would build (what a
            lane's checkpoint carries, so ``OnPolicyRunner.load`` reads it).
    """

    def __init__(self, actors: list[Any], critics: list[Any], algorithm: dict, hyperparameters: dict[str, list],
                 envs: int, steps: int, optimizer_group: dict):
        self.actor, self.critic = StackedNet(actors), StackedNet(critics)
        self.lanes, self.envs, self.steps = len(actors), envs, steps
        device = self.actor.tensors[self.actor.keys[0]].device
        self.device = device
        self.hp = {k: torch.tensor([float(v) for v in hyperparameters[k]], device=device) for k in PER_LANE}
        self.num_mini_batches = int(algorithm.get("num_mini_batches", 4))
        self.schedule = algorithm.get("schedule", "adaptive")
        self.clipped_value_loss = bool(algorithm.get("use_clipped_value_loss", True))
        self.per_mini_batch = bool(algorithm.get("normalize_advantage_per_mini_batch", False))
        self.optimizer_group = {k: v for k, v in optimizer_group.items() if k not in ("lr", "params")}
        self.nets = {"actor": self.actor, "critic": self.critic}
        self.trainable = [(net, k) for net in self.nets for k in self.nets[net].trainable]
        self.adam = LaneAdam({(net, k): self.nets[net].tensors[k] for net, k in self.trainable}, self.lanes)
        self.storage: dict[str, list[torch.Tensor]] = {}

    # -- rollout ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sample actions for observations ``[lanes, envs, obs]`` and remember the transition (rsl_rl's ``act``)."""
        mean, std = self.actor(obs), self.actor.std()
        actions = mean + std * torch.randn_like(mean)
        self._transition = {"obs": obs, "actions": actions, "values": self.critic(obs).squeeze(-1),
                            "log_prob": _log_prob(actions, mean, std), "mean": mean, "std": std.expand_as(mean)}
        return actions

    @torch.no_grad()
    def process_env_step(self, rewards: torch.Tensor, dones: torch.Tensor, time_outs: Optional[torch.Tensor]) -> None:
        """Store the step's rewards ``[lanes, envs]``; a time-out bootstraps from the value, as rsl_rl does."""
        tr = self._transition
        rewards = rewards.clone()
        if time_outs is not None:
            rewards += self.hp["gamma"].unsqueeze(1) * tr["values"] * time_outs.to(rewards)
        tr["rewards"], tr["dones"] = rewards, dones.to(rewards)
        for k, v in tr.items():
            self.storage.setdefault(k, []).append(v)

    @torch.no_grad()
    def compute_returns(self, last_obs: torch.Tensor) -> None:
        """GAE with each lane's own ``gamma`` and ``lam``; advantages normalised per lane over its rollout."""
        st = {k: torch.stack(v) for k, v in self.storage.items()}  # [steps, lanes, envs, ...]
        gamma, lam = self.hp["gamma"].unsqueeze(1), self.hp["lam"].unsqueeze(1)
        next_values, advantage = self.critic(last_obs).squeeze(-1), 0.0
        returns = torch.empty_like(st["values"])
        for t in reversed(range(st["values"].shape[0])):
            not_done = 1.0 - st["dones"][t]
            delta = st["rewards"][t] + not_done * gamma * next_values - st["values"][t]
            advantage = delta + not_done * gamma * lam * advantage
            returns[t] = advantage + st["values"][t]
            next_values = st["values"][t]
        st["returns"] = returns
        st["advantages"] = returns - st["values"]
        if not self.per_mini_batch:
            st["advantages"] = _normalize(st["advantages"], dims=(0, 2))
        # one flat batch per lane, in rsl_rl's order (step-major): [lanes, steps x envs, ...]
        self.batch = {k: v.transpose(0, 1).flatten(1, 2) for k, v in st.items()}

    # -- update -----------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        """rsl_rl's PPO update for every lane; returns each lane's mean value, surrogate and entropy losses."""
        b, lanes = self.batch, self.lanes
        size = b["values"].shape[1] // self.num_mini_batches
        order = torch.rand(lanes, size * self.num_mini_batches, device=self.device).argsort(dim=1)  # one shuffle per lane
        rows = torch.arange(lanes, device=self.device).unsqueeze(1)
        epochs = self.hp["num_learning_epochs"].round().long()
        sums = {k: torch.zeros(lanes, device=self.device) for k in ("value", "surrogate", "entropy")}
        for epoch in range(int(epochs.max())):
            active = epoch < epochs  # a lane with fewer epochs is done: its weights and Adam state stay
            for i in range(self.num_mini_batches):
                idx = order[:, i * size:(i + 1) * size]
                losses = self._step({k: v[rows, idx] for k, v in b.items()}, active)
                for k, v in losses.items():
                    sums[k] += v.detach() * active
        self.actor.update_normalization(b["obs"])
        self.critic.update_normalization(b["obs"])
        self.storage.clear()
        updates = epochs.clamp(min=1) * self.num_mini_batches
        return {k: v / updates for k, v in sums.items()}

    def _step(self, mb: dict[str, torch.Tensor], active: torch.Tensor) -> dict[str, torch.Tensor]:
        hp, lane = self.hp, (lambda v: v.unsqueeze(1))
        advantages = _normalize(mb["advantages"], dims=(1,)) if self.per_mini_batch else mb["advantages"]
        mean, std = self.actor(mb["obs"]), self.actor.std()
        log_prob = _log_prob(mb["actions"], mean, std)
        values = self.critic(mb["obs"]).squeeze(-1)
        entropy = (0.5 + _LOG_SQRT_2PI + std.log()).sum(dim=-1).squeeze(1)  # state-independent std: one per lane
        if self.schedule == "adaptive":
            with torch.no_grad():
                kl = _kl(mb["mean"], mb["std"], mean, std).mean(dim=1)
                lr, target = hp["learning_rate"], hp["desired_kl"]
                new = torch.where(kl > 2.0 * target, (lr / 1.5).clamp(min=1e-5),
                                  torch.where((kl < target / 2.0) & (kl > 0.0), (lr * 1.5).clamp(max=1e-2), lr))
                hp["learning_rate"] = torch.where(active, new, lr)
        clip = lane(hp["clip_param"])
        ratio = torch.exp(log_prob - mb["log_prob"])
        surrogate = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)).mean(dim=1)
        if self.clipped_value_loss:
            clipped = mb["values"] + (values - mb["values"]).clamp(-clip, clip)
            value_loss = torch.max((values - mb["returns"]).pow(2), (clipped - mb["returns"]).pow(2)).mean(dim=1)
        else:
            value_loss = (mb["returns"] - values).pow(2).mean(dim=1)
        loss = surrogate + hp["value_loss_coef"] * value_loss - hp["entropy_coef"] * entropy
        params = [self.nets[net].tensors[k] for net, k in self.trainable]
        grads = torch.autograd.grad((loss * active).sum(), params)
        grads = dict(zip(self.trainable, grads))
        for net in self.nets:  # rsl_rl clips the actor's and the critic's gradients apart
            clip_lanes(grads, [k for k in grads if k[0] == net], self.hp["max_grad_norm"])
        self.adam.step(grads, self.hp["learning_rate"], active)
        return {"value": value_loss, "surrogate": surrogate, "entropy": entropy}

    # -- one lane's state, rsl_rl's layout ------------------------------------------------------------
    def lane_state(self, i: int) -> dict:
        """Lane ``i``'s actor, critic and Adam state as rsl_rl's ``PPO.save`` lays them out (CPU copies)."""
        keys = [(net, k) for net in self.nets for k in self.nets[net].parameter_keys]  # Adam's parameter order
        state = {index: self.adam.lane(key, i) for index, key in enumerate(keys) if key in self.adam.moments}
        group = {**self.optimizer_group, "lr": float(self.hp["learning_rate"][i]), "params": list(range(len(keys)))}
        return {"actor_state_dict": self.actor.lane(i), "critic_state_dict": self.critic.lane(i),
                "optimizer_state_dict": {"state": {k: v for k, v in state.items() if v is not None}, "param_groups": [group]}}

    @torch.no_grad()
    def set_lane(self, i: int, state: dict) -> None:
        """Put an rsl_rl-layout state (a donor's, a checkpoint's) into lane ``i``; its learning rate comes with it."""
        self.actor.set_lane(i, {k: v.to(self.device) for k, v in state["actor_state_dict"].items()})
        self.critic.set_lane(i, {k: v.to(self.device) for k, v in state["critic_state_dict"].items()})
        optimizer = state["optimizer_state_dict"]
        keys = [(net, k) for net in self.nets for k in self.nets[net].parameter_keys]
        saved = optimizer.get("state", {})
        self.adam.set_lane(i, {key: saved.get(index) for index, key in enumerate(keys) if key in self.adam.moments})
        self.hp["learning_rate"][i] = float(optimizer["param_groups"][0]["lr"])


def _log_prob(actions: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The Gaussian log-density summed over the action dimensions (``torch.distributions.Normal``'s formula)."""
    return (-((actions - mean) ** 2) / (2 * std ** 2) - std.log() - _LOG_SQRT_2PI).sum(dim=-1)


def _kl(old_mean: torch.Tensor, old_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(old || new) of diagonal Gaussians, summed over the action dimensions."""
    return (torch.log(std / old_std) + (old_std ** 2 + (old_mean - mean) ** 2) / (2.0 * std ** 2) - 0.5).sum(dim=-1)


def _normalize(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``(x - mean) / (std + 1e-8)`` over ``dims`` (each lane on its own), as rsl_rl normalises advantages."""
    return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-8)
