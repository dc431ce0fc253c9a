"""rl_games' continuous PPO (``a2c_continuous``) for a whole population at once: every member's model stacked on a lane axis.

Why: N rl_games agents in N threads of one process (``agent.pbt.mode=shared``) are serialised by
the interpreter lock, and with the small networks of a robot policy it is the Python work of each
rl_games minibatch, not the arithmetic, that costs. Here member ``i`` is lane ``i`` of every
tensor: one batched matrix product (``torch.baddbmm``) runs a layer for all members, one backward
pass differentiates the sum of their losses (a lane's gradient depends on its own loss only), and
one Adam step with a learning rate per lane updates them all.

What stays rl_games', lane by lane: each model is built by rl_games' own model builder
(``continuous_a2c_logstd`` over an ``actor_critic`` network, so its initialisation, layers,
activations and running mean/std normalisers are rl_games') and then stacked; the update is
``A2CAgent.train_epoch``: rewards shaped by rl_games' ``DefaultRewardsShaper``, time-outs
bootstrapped from the value, rl_games' GAE, the value normaliser updated on values and returns,
advantages normalised, minibatches in rl_games' order, the input normaliser updated by every
minibatch forward, the clipped surrogate, clipped value, entropy and bounds losses with rl_games'
weights, one gradient-norm clip over the model, Adam, and the adaptive KL schedule after every
minibatch (``schedule_type: legacy``) or every mini-epoch (``standard``). A lane's state is written
in the layout of rl_games' ``get_full_state_weights``, so rl_games' own loader and Isaac Lab's
rl_games ``play.py`` read it. ``tests/test_batched_rl_games.py`` checks an epoch against rl_games' own.

Every hyperparameter PBT mutates in place (:data:`PER_LANE`, the keys of
:data:`~isaaclab_pbt.rl_games.learner.LIVE_ATTRIBUTES`) is a tensor with one entry per lane.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from ..shared.lanes import LaneAdam, clip_lanes
from .learner import LIVE_ATTRIBUTES

#: Hyperparameters with one value per lane (``agent.params.config.<name>``), read by every epoch or minibatch.
PER_LANE = tuple(LIVE_ATTRIBUTES)
#: rl_games' adaptive schedule keeps the learning rate in this range (``AdaptiveScheduler``).
MIN_LR, MAX_LR = 1e-6, 1e-2
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _lane(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-lane vector shaped to broadcast against ``like`` (``[lanes, ...]``)."""
    return v.view(-1, *[1] * (like.dim() - 1))


class StackedModel:
    """One rl_games ``continuous_a2c_logstd`` model per lane, as tensors with a leading lane axis, run for all lanes at once.

    ``tensors`` holds the models' state dicts stacked under rl_games' own key names
    (``a2c_network.actor_mlp.0.weight`` of shape ``[lanes, out, in]``, the normalisers'
    ``running_mean`` of shape ``[lanes, obs]`` in float64, as rl_games keeps them); the layer
    sequence and the activations are read from the first model and applied as they are.
    """

    def __init__(self, models: list[Any]):
        import torch.nn as nn

        template = models[0]
        self.keys = list(template.state_dict())
        self.parameter_keys = [name for name, _ in template.named_parameters()]  # Adam's order
        states = [m.state_dict() for m in models]
        self.tensors = {k: torch.stack([s[k].detach() for s in states]).clone() for k in self.keys}
        for k in self.parameter_keys:
            self.tensors[k].requires_grad_(True)
        net = template.a2c_network
        self.layers = [(f"a2c_network.actor_mlp.{i}", None) if isinstance(m, nn.Linear) else (None, m)
                       for i, m in enumerate(net.actor_mlp)]
        self.value_act, self.mu_act, self.sigma_act = net.value_act, net.mu_act, net.sigma_act
        self.normalize_input, self.normalize_value = bool(template.normalize_input), bool(template.normalize_value)
        self.eps = {name: float(getattr(getattr(template, name), "epsilon", 1e-5))
                    for name in ("running_mean_std", "value_mean_std") if hasattr(template, name)}

    def _linear(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        t = self.tensors
        return torch.baddbmm(t[prefix + ".bias"].unsqueeze(1), x, t[prefix + ".weight"].transpose(1, 2))

    def forward(self, obs: torch.Tensor, update: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
        """``(mu, logstd, value)`` for ``obs`` of shape ``[lanes, batch, obs]``, the value in the normaliser's units.

        ``update`` (one flag per lane): update those lanes' input normaliser with ``obs`` first,
        as rl_games' model does in train mode.
        """
        if self.normalize_input:
            if update is not None:
                self.update_stats("running_mean_std", obs, update)
            obs = self.normalize("running_mean_std", obs)
        x = obs
        for prefix, activation in self.layers:
            x = activation(x) if prefix is None else self._linear(prefix, x)
        value = self.value_act(self._linear("a2c_network.value", x))
        mu = self.mu_act(self._linear("a2c_network.mu", x))
        logstd = self.sigma_act(self.tensors["a2c_network.sigma"]).unsqueeze(1)
        return mu, logstd, value

    @torch.no_grad()
    def update_stats(self, name: str, x: torch.Tensor, lanes: torch.Tensor) -> None:
        """rl_games' ``RunningMeanStd`` update for the ``lanes`` flagged, from ``x`` of shape ``[lanes, batch, ...]``."""
        t = self.tensors
        mean, var, count = t[f"{name}.running_mean"], t[f"{name}.running_var"], t[f"{name}.count"]
        batch_mean, batch_var, n = x.mean(dim=1), x.var(dim=1, unbiased=False), x.shape[1]
        delta = batch_mean - mean
        total = count + n
        c = count.view(-1, *[1] * (mean.dim() - 1))
        tot = total.view_as(c)
        new_mean = mean + delta * n / tot
        new_var = (var * c + batch_var * n + delta ** 2 * c * n / tot) / tot
        keep = _lane(lanes, mean)
        mean.copy_(torch.where(keep, new_mean, mean))
        var.copy_(torch.where(keep, new_var, var))
        count.copy_(torch.where(lanes, total, count))

    def normalize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        t, shape = self.tensors, (x.shape[0], 1, -1)
        mean, var = t[f"{name}.running_mean"].float().view(shape), t[f"{name}.running_var"].float().view(shape)
        return ((x - mean) / torch.sqrt(var + self.eps[name])).clamp(-5.0, 5.0)

    def denormalize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        t, shape = self.tensors, (x.shape[0], 1, -1)
        mean, var = t[f"{name}.running_mean"].float().view(shape), t[f"{name}.running_var"].float().view(shape)
        return torch.sqrt(var + self.eps[name]) * x.clamp(-5.0, 5.0) + mean

    def lane(self, i: int) -> dict[str, torch.Tensor]:
        """Lane ``i``'s model state dict, rl_games' layout, as CPU copies."""
        return {k: self.tensors[k][i].detach().to("cpu", copy=True) for k in self.keys}

    @torch.no_grad()
    def set_lane(self, i: int, state: dict[str, torch.Tensor]) -> None:
        for k in self.keys:
            self.tensors[k][i].copy_(state[k])


class BatchedA2C:
    """rl_games' ``A2CAgent`` (feed-forward ``actor_critic``, fixed sigma) for ``lanes`` members at once.

    Args:
        models: one rl_games model per lane, built by rl_games' model builder.
        config: the ``params.config`` settings the lanes share (minibatch size, schedule, clipping,
            normalisation, reward shaper); the :data:`PER_LANE` values in it are ignored.
        hyperparameters: for each of :data:`PER_LANE`, one value per lane.
        envs: envs per lane; actions_low, actions_high: the action space's bounds, which rl_games
            rescales clipped actions to.
        rewards_shaper: rl_games' ``DefaultRewardsShaper`` of the config's ``reward_shaper``.
        optimizer_group: the parameter group of the Adam optimiser rl_games would build (what a
            lane's state carries, so rl_games' loader reads it).
    """

    def __init__(self, models: list[Any], config: dict, hyperparameters: dict[str, list], envs: int,
                 actions_low: torch.Tensor, actions_high: torch.Tensor, rewards_shaper: Callable[[torch.Tensor], torch.Tensor],
                 optimizer_group: dict):
        self.model = StackedModel(models)
        self.lanes, self.envs = len(models), envs
        self.steps = int(config["horizon_length"])
        self.device = self.model.tensors[self.model.keys[0]].device
        self.hp = {k: torch.tensor([float(v) for v in hyperparameters[k]], device=self.device) for k in PER_LANE}
        self.batch_size = self.steps * envs
        self.minibatch_size = int(config["minibatch_size"])
        self.adaptive = config.get("lr_schedule") == "adaptive"
        self.per_minibatch = config.get("schedule_type", "legacy") == "legacy"
        self.clip_value, self.clip_actions = bool(config["clip_value"]), bool(config.get("clip_actions", True))
        self.normalize_advantage = bool(config["normalize_advantage"])
        self.value_bootstrap = bool(config.get("value_bootstrap", True))
        self.truncate_grads = bool(config.get("truncate_grads", False))
        self.bound_loss_type = config.get("bound_loss_type", "bound")
        self.actions_low, self.actions_high = actions_low.to(self.device), actions_high.to(self.device)
        self.rewards_shaper = rewards_shaper
        self.optimizer_group = {k: v for k, v in optimizer_group.items() if k not in ("lr", "params")}
        self.adam = LaneAdam({k: self.model.tensors[k] for k in self.model.parameter_keys}, self.lanes)
        self.storage: dict[str, list[torch.Tensor]] = {}

    # -- rollout ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sample actions for observations ``[lanes, envs, obs]``, remember the transition; returns the env's actions.

        rl_games' ``get_action_values`` in eval mode: the value denormalised, the action clipped to
        [-1, 1] and rescaled to the action space for the env, the unclipped one stored.
        """
        mu, logstd, value = self.model.forward(obs)
        sigma = logstd.exp().expand_as(mu)
        actions = mu + sigma * torch.randn_like(mu)
        if self.model.normalize_value:
            value = self.model.denormalize("value_mean_std", value)
        self._transition = {"obses": obs, "actions": actions, "neglogpacs": _neglogp(actions, mu, sigma, logstd),
                            "values": value, "mus": mu, "sigmas": sigma}
        if not self.clip_actions:
            return actions
        low, high = self.actions_low, self.actions_high
        return actions.clamp(-1.0, 1.0) * (high - low) / 2.0 + (high + low) / 2.0

    @torch.no_grad()
    def process_env_step(self, rewards: torch.Tensor, dones: torch.Tensor, time_outs: Optional[torch.Tensor]) -> torch.Tensor:
        """Store the step's shaped rewards ``[lanes, envs]`` (a time-out bootstraps from the value) and its dones; returns the shaped rewards."""
        tr = self._transition
        shaped = self.rewards_shaper(rewards.unsqueeze(-1).float())
        if self.value_bootstrap and time_outs is not None:
            shaped = shaped + _lane(self.hp["gamma"], tr["values"]) * tr["values"] * time_outs.unsqueeze(-1).float()
        tr["rewards"], tr["next_dones"] = shaped, dones.float()
        for k, v in tr.items():
            self.storage.setdefault(k, []).append(v)
        return shaped.squeeze(-1)

    @torch.no_grad()
    def compute_returns(self, last_obs: torch.Tensor) -> None:
        """rl_games' ``discount_values`` with each lane's ``gamma`` and ``tau``, then ``prepare_dataset``."""
        st = {k: torch.stack(v) for k, v in self.storage.items()}  # [steps, lanes, envs, ...]
        self.storage.clear()
        _, _, next_values = self.model.forward(last_obs)
        if self.model.normalize_value:
            next_values = self.model.denormalize("value_mean_std", next_values)
        gamma, tau = _lane(self.hp["gamma"], next_values), _lane(self.hp["tau"], next_values)
        advantages, last = torch.zeros_like(st["rewards"]), 0.0
        for t in reversed(range(self.steps)):
            not_done = (1.0 - st["next_dones"][t]).unsqueeze(-1)
            delta = st["rewards"][t] + gamma * next_values * not_done - st["values"][t]
            advantages[t] = last = delta + gamma * tau * not_done * last
            next_values = st["values"][t]
        returns = advantages + st["values"]
        # one flat batch per lane, in rl_games' order (env-major, ``swap_and_flatten01``): [lanes, envs x steps, ...]
        batch = {k: v.transpose(0, 1).transpose(1, 2).flatten(1, 2)
                 for k, v in st.items() if k not in ("rewards", "next_dones")}
        returns = returns.transpose(0, 1).transpose(1, 2).flatten(1, 2)
        values = batch["values"]
        advantages = (returns - values).sum(dim=-1)
        if self.model.normalize_value:
            every = torch.ones(self.lanes, dtype=torch.bool, device=self.device)
            self.model.update_stats("value_mean_std", values, every)
            values = self.model.normalize("value_mean_std", values)
            self.model.update_stats("value_mean_std", returns, every)
            returns = self.model.normalize("value_mean_std", returns)
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean(dim=1, keepdim=True)) / (advantages.std(dim=1, keepdim=True) + 1e-8)
        batch.update(values=values, returns=returns, advantages=advantages)
        self.batch = batch

    # -- update -----------------------------------------------------------------------------------
    def update(self) -> dict[str, torch.Tensor]:
        """rl_games' mini-epochs for every lane; returns each lane's mean actor, critic, entropy and bounds losses and KL."""
        b, lanes, size = self.batch, self.lanes, self.minibatch_size
        epochs = self.hp["mini_epochs"].round().long().clamp(min=1)
        names = ("a_loss", "c_loss", "entropy", "b_loss", "kl")
        sums = {k: torch.zeros(lanes, device=self.device) for k in names}
        for epoch in range(int(epochs.max())):
            active = epoch < epochs  # a lane with fewer mini-epochs is done: its weights, Adam and normaliser stay
            kls = []
            for start in range(0, self.batch_size, size):
                losses = self._step({k: v[:, start:start + size] for k, v in b.items()}, active)
                for k, v in losses.items():
                    sums[k] += v.detach() * active
                kls.append(losses["kl"])
                if self.adaptive and self.per_minibatch:
                    self._adapt(losses["kl"], active)
            if self.adaptive and not self.per_minibatch:
                self._adapt(torch.stack(kls).mean(dim=0), active)
        return {k: v / (epochs * (self.batch_size // size)) for k, v in sums.items()}

    def _step(self, mb: dict[str, torch.Tensor], active: torch.Tensor) -> dict[str, torch.Tensor]:
        hp, model = self.hp, self.model
        mu, logstd, values = model.forward(mb["obses"], update=active)
        sigma = logstd.exp().expand_as(mu)
        neglogp = _neglogp(mb["actions"], mu, sigma, logstd)
        e_clip = _lane(hp["e_clip"], mb["advantages"])
        ratio = torch.exp(mb["neglogpacs"] - neglogp)
        a_loss = torch.max(-mb["advantages"] * ratio, -mb["advantages"] * ratio.clamp(1.0 - e_clip, 1.0 + e_clip)).mean(dim=1)
        if self.clip_value:
            clipped = mb["values"] + (values - mb["values"]).clamp(-e_clip.unsqueeze(-1), e_clip.unsqueeze(-1))
            c_loss = torch.max((values - mb["returns"]) ** 2, (clipped - mb["returns"]) ** 2)
        else:
            c_loss = (mb["returns"] - values) ** 2
        c_loss = c_loss.flatten(1).mean(dim=1)
        entropy = (0.5 + _HALF_LOG_2PI + logstd).sum(dim=-1).mean(dim=1)  # a fixed sigma: the same for every sample
        if self.bound_loss_type == "regularisation":
            b_loss = (mu * mu).sum(dim=-1).mean(dim=1)
        else:
            b_loss = ((mu - 1.1).clamp(min=0.0) ** 2 + (mu + 1.1).clamp(max=0.0) ** 2).sum(dim=-1).mean(dim=1)
        loss = a_loss + 0.5 * c_loss * hp["critic_coef"] - entropy * hp["entropy_coef"] + b_loss * hp["bounds_loss_coef"]
        keys = model.parameter_keys
        grads = dict(zip(keys, torch.autograd.grad((loss * active).sum(), [model.tensors[k] for k in keys])))
        if self.truncate_grads:
            clip_lanes(grads, keys, hp["grad_norm"])
        self.adam.step(grads, hp["learning_rate"], active)
        with torch.no_grad():
            mu, sigma = mu.detach(), sigma.detach()
            old_mu, old_sigma = mb["mus"], mb["sigmas"]
            kl = (torch.log(old_sigma / sigma + 1e-5) + (sigma ** 2 + (old_mu - mu) ** 2) / (2.0 * (old_sigma ** 2 + 1e-5))
                  - 0.5).sum(dim=-1).mean(dim=1)
            keep = _lane(active, mu)
            old_mu.copy_(torch.where(keep, mu, old_mu))  # rl_games' ``update_mu_sigma``: the next mini-epoch's KL reference
            old_sigma.copy_(torch.where(keep, sigma, old_sigma))
        return {"a_loss": a_loss, "c_loss": c_loss, "entropy": entropy, "b_loss": b_loss, "kl": kl}

    @torch.no_grad()
    def _adapt(self, kl: torch.Tensor, active: torch.Tensor) -> None:
        """rl_games' ``AdaptiveScheduler``, each lane with its own ``kl_threshold``."""
        lr, threshold = self.hp["learning_rate"], self.hp["kl_threshold"]
        new = torch.where(kl > 2.0 * threshold, (lr / 1.5).clamp(min=MIN_LR), lr)
        new = torch.where(kl < 0.5 * threshold, (lr * 1.5).clamp(max=MAX_LR), new)
        self.hp["learning_rate"] = torch.where(active, new, lr)

    # -- one lane's state, rl_games' layout ----------------------------------------------------------
    def lane_state(self, i: int) -> dict:
        """Lane ``i``'s model and Adam state as ``get_full_state_weights`` lays them out (CPU copies; no epoch, frame or env state)."""
        keys = self.model.parameter_keys
        state = {index: self.adam.lane(key, i) for index, key in enumerate(keys)}
        group = {**self.optimizer_group, "lr": float(self.hp["learning_rate"][i]), "params": list(range(len(keys)))}
        return {"model": self.model.lane(i),
                "optimizer": {"state": {k: v for k, v in state.items() if v is not None}, "param_groups": [group]}}

    @torch.no_grad()
    def set_lane(self, i: int, state: dict) -> None:
        """Put an rl_games full state (a donor's, a checkpoint's) into lane ``i``; its learning rate comes with it."""
        self.model.set_lane(i, {k: v.to(self.device) for k, v in state["model"].items()})
        optimizer = state["optimizer"]
        saved = optimizer.get("state", {})
        self.adam.set_lane(i, {key: saved.get(index) for index, key in enumerate(self.model.parameter_keys)})
        self.hp["learning_rate"][i] = float(optimizer["param_groups"][0]["lr"])


def _neglogp(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, logstd: torch.Tensor) -> torch.Tensor:
    """rl_games' ``neglogp``: the Gaussian's negative log-density summed over the action dimensions."""
    return 0.5 * (((x - mu) / sigma) ** 2).sum(dim=-1) + _HALF_LOG_2PI * x.shape[-1] + logstd.expand_as(mu).sum(dim=-1)
