"""The full training state of an rsl_rl learner, and copying a donor's into a running one.

The state is what ``OnPolicyRunner.save`` writes (``actor_state_dict``, ``critic_state_dict``,
``optimizer_state_dict``, optional RND, ``iter``, ``infos``) plus ``env_state``, the curriculum of
the env where it has one. Observation normalisers are modules inside the actor and critic, so
they travel with the weights. Because the layout is rsl_rl's own, a published state loads with
``OnPolicyRunner.load`` and Isaac Lab's rsl_rl ``play.py``. Published copies live on the CPU,
so any machine loads them and training can go on while a thread writes them.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Optional

import torch
from torch.utils._pytree import tree_map

_MODELS = ("actor_state_dict", "critic_state_dict", "rnd_state_dict")


def cpu_copy(tree: Any) -> Any:
    """The same nesting with every tensor detached and copied to the CPU."""
    return tree_map(lambda v: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v, tree)


def training_state(runner: Any) -> dict:
    """A CPU copy of the runner's full state, in rsl_rl's checkpoint layout."""
    env_state = getattr(runner.env, "get_env_state", lambda: None)()
    return cpu_copy({**runner.alg.save(), "iter": runner.current_learning_iteration, "infos": None,
                     "env_state": env_state})


def misfit(runner: Any, state: Any) -> Optional[str]:
    """Why ``state`` cannot replace the runner's own (``None`` when it fits), checked before anything is copied."""
    return misfit_for(runner.alg.save(), state)


def misfit_for(own: dict, state: Any) -> Optional[str]:
    """Why ``state`` cannot replace ``own`` (a state in the same layout), or ``None``.

    Every model tensor must exist with the learner's shape and be finite; the optimiser must have
    the same parameter groups. A partial copy would leave a learner with half a donor inside.
    """
    if not isinstance(state, dict):
        return "not a training state"
    for part in _MODELS:
        if part not in own:
            continue
        theirs = state.get(part)
        if not isinstance(theirs, dict):
            return f"{part} is missing"
        if set(theirs) != set(own[part]):
            return f"{part} has other tensors ({len(theirs)} vs {len(own[part])})"
        for name, tensor in own[part].items():
            other = theirs[name]
            if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
                return f"{part}.{name} has shape {getattr(other, 'shape', type(other).__name__)}, this learner {tuple(tensor.shape)}"
            if other.is_floating_point() and not bool(torch.isfinite(other).all()):
                return f"{part}.{name} holds NaN or inf"
    optimizer = state.get("optimizer_state_dict")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list):
        return "optimizer_state_dict is missing"
    own_groups = [len(g["params"]) for g in own["optimizer_state_dict"]["param_groups"]]
    if [len(g.get("params", ())) for g in optimizer["param_groups"]] != own_groups:
        return "the optimiser has other parameter groups"
    lr = optimizer["param_groups"][0].get("lr")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        return f"the optimiser's learning rate is {lr!r}"
    return None


def load_into(runner: Any, state: dict) -> None:
    """Continue from ``state`` (weights, optimiser, normalisers, env curriculum) in the live learner.

    The learner keeps its own iteration counter, as a member that copies a donor keeps its own
    frame budget. Call :func:`misfit` first: this assumes the state fits.
    """
    device = runner.device
    runner.alg.load(tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, state),
                    {"actor": True, "critic": True, "optimizer": True, "rnd": True}, True)
    set_env_state = getattr(runner.env, "set_env_state", None)
    if set_env_state is not None and state.get("env_state") is not None:
        set_env_state(state["env_state"])


def digest(state: dict) -> str:
    """A hash of the actor's weights in ``state`` (what the lineage logs as ``weights_sha256``)."""
    h = hashlib.sha256()
    for name, tensor in sorted(state["actor_state_dict"].items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
