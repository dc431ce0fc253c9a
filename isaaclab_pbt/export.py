"""Copying the population's best member out of the workspace, with its hyperparameter schedule."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict

import yaml

from . import checkpoint as ckpt
from .lineage import ancestry, schedule
from .workspace import Workspace, atomic_write


def export_best(root: str, out_dir: str) -> dict:
    """Write ``<out_dir>/<checkpoint>.pth``, ``best.yaml`` and ``schedule.yaml``; returns what was written.

    The checkpoint is a full rl_games state: ``--checkpoint`` of a play or train script loads it.
    It leaves the workspace the way a donor's state enters a member: loaded with ``weights_only``
    (a planted pickle cannot run code, here or in whoever loads the export) and written back as
    plain CPU tensors, so a state published on a GPU loads on any machine, with rl_games' own loader
    too. ``schedule.yaml`` is the hyperparameter schedule along the best member's ancestry, for
    ``scripts/train.py --pbt_replay``.
    """
    ws = Workspace(root)
    best = ws.best()
    if best is None:
        raise SystemExit(f"export: '{root}' has no best member yet (members publish one at their first PBT interval)")
    record, checkpoint = best
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"pbt_best_{record.policy_idx:03d}_{record.iteration:06d}.pth")
    try:
        state = ckpt.portable(ckpt.load(checkpoint, "cpu"))
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        raise SystemExit(f"export: the best checkpoint {checkpoint} cannot be loaded safely: {str(e).splitlines()[0]}") from None
    atomic_write(target, lambda f: ckpt.save(state, f))
    path = ancestry(ws, record.policy_idx, before=record.time + 1e-3)
    plan = {"member": record.policy_idx, "objective": record.objective, "frame": record.frame,
            "schedule": schedule(path)}
    for name, data in (("best.yaml", {**asdict(record), "checkpoint": os.path.basename(target)}), ("schedule.yaml", plan)):
        text = yaml.safe_dump(data, sort_keys=False).encode()
        atomic_write(os.path.join(out_dir, name), lambda f, text=text: f.write(text))
    return {"checkpoint": target, "record": record, "schedule": plan["schedule"]}
