"""Copying the population's best member out of the workspace, with its hyperparameter schedule."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict
from typing import Any

import torch
import yaml

from ..core.workspace import Workspace, atomic_write
from ..rl_games import checkpoint as ckpt
from .lineage import ancestry, schedule


class ExportError(ValueError):
    """The workspace has nothing that may leave it: no best member, or a checkpoint that is not safe plain data."""


def _non_finite(value: Any, where: str = "") -> list[str]:
    """Names of the floating-point tensors in ``value`` that hold a NaN or an infinity."""
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [bad for n, v in enumerate(value) for bad in _non_finite(v, f"{where}[{n}]")]
    if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return [where]
    return []


def export_best(root: str, out_dir: str) -> dict:
    """Write ``<out_dir>/<checkpoint>.pth``, ``best.yaml`` and ``schedule.yaml``; returns what was written.

    The checkpoint is a full rl_games state: ``--checkpoint`` of a play or train script loads it.
    It leaves the workspace the way a donor's state enters a member: loaded with ``weights_only``
    (a planted pickle cannot run code, here or in whoever loads the export, rl_games' unrestricted
    loader included), checked for NaN and infinite tensors, and written as a fresh file of plain
    CPU tensors (never a copy of the workspace's bytes), so a state published on a GPU loads on
    any machine. ``schedule.yaml`` is the hyperparameter schedule along the best member's
    ancestry, for ``scripts/train.py --pbt_replay``. Raises :class:`ExportError` and writes
    nothing when the best checkpoint fails a check.
    """
    ws = Workspace(root)
    best = ws.best()
    if best is None:
        raise ExportError(f"'{root}' has no best member yet (members publish one at their first PBT interval)")
    record, checkpoint = best
    try:
        state = ckpt.portable(ckpt.load(checkpoint, "cpu"))
        bad = _non_finite(state)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:  # RecursionError is a RuntimeError
        raise ExportError(f"the best checkpoint {checkpoint} cannot be loaded safely: {(str(e) or type(e).__name__).splitlines()[0]}") from None
    if bad:
        raise ExportError(f"the best checkpoint {checkpoint} holds NaN or infinite values in {', '.join(bad[:3])}")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"pbt_best_{record.policy_idx:03d}_{record.iteration:06d}.pth")
    atomic_write(target, lambda f: ckpt.save(state, f))
    path = ancestry(ws, record.policy_idx, before=record.time + 1e-3)
    plan = {"member": record.policy_idx, "objective": record.objective, "frame": record.frame,
            "schedule": schedule(path)}
    for name, data in (("best.yaml", {**asdict(record), "checkpoint": os.path.basename(target)}), ("schedule.yaml", plan)):
        text = yaml.safe_dump(data, sort_keys=False).encode()
        atomic_write(os.path.join(out_dir, name), lambda f, text=text: f.write(text))
    return {"checkpoint": target, "record": record, "schedule": plan["schedule"]}
