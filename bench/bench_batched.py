"""N learners one by one against N learners batched into one call (torch.func: stacked weights, vmap).

What a one-process population spends per epoch, on the shapes of the embedded PointReach config
(an actor-critic MLP 5 -> [32, 32] -> 2 actions + 1 value, elu; 128 envs x 16 steps per epoch;
4 mini-epochs of 2 minibatches of 1024): 16 policy inferences and 8 PPO gradient steps (clipped
surrogate, value loss, entropy, gradient-norm clipping, Adam with each learner's own learning
rate), for every learner. One by one: each learner its own module and optimiser, as the
one-process population runs today (rl_games and rsl_rl each have their own loop). Batched: the
learners' weights stacked, every inference and gradient step one call for all of them. Both
start from the same weights and data; the bench checks they compute the same numbers before it
times them, alternating, and reports the medians and their ratio.

This measures the compute a batched population would save; it is not a training mode of the
package (no RL library's loop can batch its learner with others).

    python bench/bench_batched.py [--members 8] [--rounds 5] [--epochs 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

OBS, ACT, ENVS, STEPS, MINIBATCH, MINI_EPOCHS = 5, 2, 128, 16, 1024, 4


class ActorCritic(nn.Module):
    """rl_games' continuous actor-critic of the shipped config: one MLP trunk, a mean head, a value head, a log-std."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(OBS, 32), nn.ELU(), nn.Linear(32, 32), nn.ELU())
        self.mu, self.value = nn.Linear(32, ACT), nn.Linear(32, 1)
        self.log_std = nn.Parameter(torch.zeros(ACT))

    def forward(self, obs):
        h = self.trunk(obs)
        return self.mu(h), self.log_std.expand(obs.shape[0], ACT), self.value(h).squeeze(-1)


def ppo_loss(mu, log_std, value, actions, old_logp, adv, returns):
    """PPO's clipped surrogate, value loss and entropy bonus for a diagonal Gaussian policy."""
    logp = (-0.5 * ((actions - mu) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    ratio = (logp - old_logp).exp()
    surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean(-1)  # per learner when batched
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1).mean(-1)
    return surrogate + 0.5 * (value - returns).square().mean(-1) - 0.001 * entropy


def forward_bmm(p, x):
    """The stacked learners' forward pass as batched matrix products (weights ``(N, out, in)``, inputs ``(N, B, in)``)."""
    def layer(name, h):
        return torch.baddbmm(p[f"{name}.bias"].unsqueeze(1), h, p[f"{name}.weight"].transpose(1, 2))

    h = F.elu(layer("trunk.2", F.elu(layer("trunk.0", x))))
    mu = layer("mu", h)
    return mu, p["log_std"].unsqueeze(1).expand_as(mu), layer("value", h).squeeze(-1)


def batch_data(n, device, gen):
    def r(*shape):
        return torch.randn(*shape, generator=gen).to(device)

    return {"obs": r(n, STEPS, ENVS, OBS), "mb_obs": r(n, MINIBATCH, OBS), "actions": r(n, MINIBATCH, ACT),
            "old_logp": r(n, MINIBATCH), "adv": r(n, MINIBATCH), "returns": r(n, MINIBATCH)}


def ppo_step(model, optimizer, data, i):
    """One PPO gradient step of learner ``i`` on its own: loss, backward, gradient-norm clipping, Adam."""
    loss = ppo_loss(*model(data["mb_obs"][i]), data["actions"][i], data["old_logp"][i], data["adv"][i], data["returns"][i])
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def looped(models, optims, data, epochs):
    for _ in range(epochs):
        with torch.no_grad():
            for step in range(STEPS):
                for i, m in enumerate(models):
                    m(data["obs"][i, step])
        for _ in range(MINI_EPOCHS * 2):
            for i, (m, opt) in enumerate(zip(models, optims)):
                ppo_step(m, opt, data, i)


class Batched:
    """The same learners as one set of stacked weights; Adam by hand, with one learning rate per learner.

    ``mode``: ``vmap`` (torch.func's vmap over the module) or ``bmm`` (batched matrix products by hand).
    """

    def __init__(self, models, lrs, mode="vmap"):
        self.base = copy.deepcopy(models[0]).to("meta")
        params, _ = stack_module_state(models)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.lr = torch.tensor(lrs, device=next(iter(self.params.values())).device)
        self.m = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.t = 0
        self.forward = vmap(lambda p, x: functional_call(self.base, p, (x,))) if mode == "vmap" else forward_bmm

    def step(self, data):
        mu, log_std, value = self.forward(self.params, data["mb_obs"])
        loss = ppo_loss(mu, log_std, value, data["actions"], data["old_logp"], data["adv"], data["returns"])
        grads = torch.autograd.grad(loss.sum(), list(self.params.values()))
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()  # one norm per learner
        scale = (1.0 / (norms + 1e-6)).clamp(max=1.0)
        self.t += 1
        with torch.no_grad():
            for (k, p), g in zip(self.params.items(), grads):
                g = g * scale.view(-1, *[1] * (g.dim() - 1))
                self.m[k].mul_(0.9).add_(g, alpha=0.1)
                self.v[k].mul_(0.999).addcmul_(g, g, value=0.001)
                m_hat, v_hat = self.m[k] / (1 - 0.9 ** self.t), self.v[k] / (1 - 0.999 ** self.t)
                p -= self.lr.view(-1, *[1] * (p.dim() - 1)) * m_hat / (v_hat.sqrt() + 1e-8)

    def run(self, data, epochs):
        for _ in range(epochs):
            with torch.no_grad():
                for step in range(STEPS):
                    self.forward(self.params, data["obs"][:, step])
            for _ in range(MINI_EPOCHS * 2):
                self.step(data)


def check_same(models, optims, batched, data):
    """One gradient step both ways from the same weights must give the same weights (else the timing compares nothing)."""
    for i, (m, opt) in enumerate(zip(models, optims)):
        ppo_step(m, opt, data, i)
    batched.step(data)
    worst = 0.0
    for i, m in enumerate(models):
        for k, p in m.named_parameters():
            worst = max(worst, (p - batched.params[k][i]).abs().max().item())
    if worst > 1e-5:
        raise SystemExit(f"bench_batched: the batched step differs from the one-by-one step by {worst:.2e}")
    return worst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5, help="epochs timed per round")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n = args.members
    lrs = [3e-3 * (1.5 ** (i - n // 2)) for i in range(n)]  # each learner its own rate, as a population has
    models = [ActorCritic().to(args.device) for _ in range(n)]
    optims = [torch.optim.Adam(m.parameters(), lr=lr, eps=1e-8) for m, lr in zip(models, lrs)]
    data = batch_data(n, args.device, gen)
    ways = {"one by one": None}
    worst = 0.0
    for mode in ("vmap", "bmm"):
        start = [copy.deepcopy(m) for m in models]
        starts = [torch.optim.Adam(m.parameters(), lr=lr, eps=1e-8) for m, lr in zip(start, lrs)]
        ways[f"batched ({mode})"] = Batched(models, lrs, mode)
        worst = max(worst, check_same(start, starts, Batched(models, lrs, mode), data))
    times = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in (list(ways) if r % 2 == 0 else list(reversed(ways))):
            t0 = time.perf_counter()
            looped(models, optims, data, args.epochs) if ways[name] is None else ways[name].run(data, args.epochs)
            times[name].append((time.perf_counter() - t0) / args.epochs)
    one = statistics.median(times["one by one"])
    print(f"{n} learners, one epoch each ({STEPS} inferences of {ENVS} envs, {MINI_EPOCHS * 2} PPO steps of {MINIBATCH}), "
          f"{args.device}, 1 torch thread, medians of {args.rounds} rounds; a step both ways agrees to {worst:.1e}:")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"  {name:16s}: {t * 1e3:7.1f} ms per epoch of the population  ({one / t:.2f}x the speed of one by one)")


if __name__ == "__main__":
    main()
