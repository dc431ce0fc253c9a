"""The full training state of an skrl PPO agent, and copying a donor's into a running one.

The state is what skrl's ``Agent.save`` writes, one entry per ``agent.checkpoint_modules``
(``policy``, ``value``, ``optimizer`` and the ``RunningStandardScaler`` preprocessors that the
config defines: ``observation_preprocessor``, ``state_preprocessor``, ``value_preprocessor``),
plus one ``pbt`` entry: the iteration counter, the env's curriculum and the learning-rate
scheduler's state where there is one. Because the layout is skrl's own, a published state loads
with skrl's ``Agent.load`` (which skips the ``pbt`` entry with a warning) and Isaac Lab's skrl
``play.py``. Published copies live on the CPU, so any machine loads them and training can go on
while a thread writes them.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch.utils._pytree import tree_map

#: The entry of a published state that is ours, not an skrl module.
PBT_KEY = "pbt"


def cpu_copy(tree: Any) -> Any:
    """The same nesting with every tensor detached and copied to the CPU."""
    return tree_map(lambda v: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v, tree)


def modules_state(agent: Any) -> dict:
    """What ``Agent.save`` writes: the state dict of each checkpoint module (not a copy)."""
    return {name: module.state_dict() if hasattr(module, "state_dict") else module
            for name, module in agent.checkpoint_modules.items() if module is not None}


def training_state(agent: Any, env: Any = None, iteration: int = 0) -> dict:
    """A CPU copy of the agent's full state in skrl's checkpoint layout, with the ``pbt`` entry."""
    scheduler = getattr(agent, "scheduler", None)
    extra = {
        "iter": int(iteration),
        "env_state": getattr(env, "get_env_state", lambda: None)(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    return cpu_copy({**modules_state(agent), PBT_KEY: extra})


def _tensor_misfit(where: str, own: dict, theirs: Any) -> Optional[str]:
    """Why the tensors ``theirs`` cannot replace ``own`` (same names, shapes, finite values), or ``None``."""
    if not isinstance(theirs, dict):
        return f"{where} is missing"
    if set(theirs) != set(own):
        return f"{where} has other tensors ({len(theirs)} vs {len(own)})"
    for name, tensor in own.items():
        other = theirs[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            return f"{where}.{name} has shape {getattr(other, 'shape', type(other).__name__)}, this agent {tuple(tensor.shape)}"
        if other.is_floating_point() and not bool(torch.isfinite(other).all()):
            return f"{where}.{name} holds NaN or inf"
    return None


def _optimizer_misfit(agent: Any, theirs: Any) -> Optional[str]:
    """Same parameter groups, Adam moments of each parameter's shape and finite, a usable learning rate."""
    if not isinstance(theirs, dict) or not isinstance(theirs.get("param_groups"), list) or not isinstance(theirs.get("state"), dict):
        return "optimizer is missing"
    own = agent.optimizer.state_dict()
    if [len(g.get("params", ())) for g in theirs["param_groups"] if isinstance(g, dict)] != [len(g["params"]) for g in own["param_groups"]]:
        return "the optimiser has other parameter groups"
    shapes = {}
    for group, params in zip(theirs["param_groups"], agent.optimizer.param_groups):
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            return f"the optimiser's learning rate is {lr!r}"
        for their_id, param in zip(group["params"], params["params"]):
            shapes[their_id] = param.shape
    for param_id, moments in theirs["state"].items():
        if param_id not in shapes or not isinstance(moments, dict):
            return f"the optimiser's state has an unknown parameter {param_id!r}"
        for name, tensor in moments.items():
            if not isinstance(tensor, torch.Tensor):
                return f"optimizer.state.{param_id}.{name} is not a tensor"
            if tensor.dim() and tensor.shape != shapes[param_id]:
                return f"optimizer.state.{param_id}.{name} has shape {tuple(tensor.shape)}, the parameter {tuple(shapes[param_id])}"
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f"optimizer.state.{param_id}.{name} holds NaN or inf"
    return None


def misfit(agent: Any, state: Any) -> Optional[str]:
    """Why ``state`` cannot replace the agent's own (``None`` when it fits), checked whole before anything is copied.

    Every checkpoint module of this agent must be there and no other: the models' and the
    preprocessors' tensors with this agent's names and shapes and finite values (a running
    variance below zero is refused too), the optimiser with the same groups and moments of each
    parameter's shape. A partial copy would leave an agent with half a donor inside.
    """
    if not isinstance(state, dict):
        return "not a training state"
    own = modules_state(agent)
    theirs = {k: v for k, v in state.items() if k != PBT_KEY}
    if set(theirs) != set(own):
        missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
        return "; ".join(filter(None, [missing and f"{', '.join(missing)} missing", extra and f"{', '.join(extra)} not in this agent"]))
    for name, module_state in own.items():
        if name == "optimizer":
            problem = _optimizer_misfit(agent, theirs[name])
        else:
            problem = _tensor_misfit(name, module_state, theirs[name])
            variance = theirs[name].get("running_variance") if problem is None else None
            if problem is None and isinstance(variance, torch.Tensor) and bool((variance < 0).any()):
                problem = f"{name}.running_variance is negative"
        if problem is not None:
            return problem
    extra = state.get(PBT_KEY)
    if extra is not None and not isinstance(extra, dict):
        return f"{PBT_KEY} is not a mapping"
    return None


def load_into(agent: Any, state: dict, env: Any = None) -> None:
    """Continue from ``state`` (models, optimiser, preprocessors, scheduler, env curriculum) in the live agent.

    The agent keeps its own iteration counter, as a member that copies a donor keeps its own
    frame budget. Call :func:`misfit` first: this assumes the state fits.
    """
    device = agent.device
    on_device = tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, state)
    for name, module in agent.checkpoint_modules.items():
        if module is not None and name in on_device:
            module.load_state_dict(on_device[name])
    extra = state.get(PBT_KEY) or {}
    scheduler = getattr(agent, "scheduler", None)
    if scheduler is not None and isinstance(extra.get("scheduler"), dict):
        scheduler.load_state_dict(extra["scheduler"])
    set_env_state = getattr(env, "set_env_state", None)
    if set_env_state is not None and extra.get("env_state") is not None:
        set_env_state(extra["env_state"])
