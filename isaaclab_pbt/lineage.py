"""Family trees and hyperparameter schedules, reconstructed from the workspace's logs (pure).

A member's *ancestry* walks back from its newest state: its own mutations, then the replacement
that gave it a donor's weights, then the donor's own ancestry before that moment, and so on until
a member that started from scratch. Each step is one lineage-log event; time (not frames) orders
the walk, because a donor's weights always predate the replacement that copied them, so the walk
ends even on hostile or inconsistent logs.

The *schedule* of a member is the sequence of hyperparameter values along its ancestry, as one
learner would have seen them: what Ray Tune calls a PBT schedule, replayable with
``scripts/train.py --pbt_replay``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .workspace import Workspace

_MAX_STEPS = 10_000


@dataclass
class Step:
    """One event on an ancestry path."""

    member: int
    event: str
    """``replaced`` (took the donor's weights), ``mutated`` (kept its own) or ``start``."""
    frame: int
    time: float
    donor: Optional[int] = None
    donor_iteration: Optional[int] = None
    changed: dict[str, list[float]] = field(default_factory=dict)
    hyperparameters: dict[str, float] = field(default_factory=dict)


def _as_int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_step(member: int, entry: dict[str, Any]) -> Optional[Step]:
    """A :class:`Step` from a lineage entry, or ``None`` for an entry with missing or wrong fields."""
    frame, when = _as_int(entry.get("frame")), entry.get("time")
    if entry.get("event") not in ("replaced", "mutated") or frame is None or not isinstance(when, (int, float)):
        return None
    hp = entry.get("hyperparameters")
    changed = entry.get("changed")
    return Step(member, entry["event"], frame, float(when), _as_int(entry.get("donor")), _as_int(entry.get("donor_iteration")),
                changed if isinstance(changed, dict) else {}, hp if isinstance(hp, dict) else {})


def ancestry(ws: Workspace, member: int, before: float = math.inf) -> list[Step]:
    """Steps from ``member``'s state at time ``before`` back to a start, newest first."""
    path: list[Step] = []
    while len(path) < _MAX_STEPS:
        steps = [s for s in (parse_step(member, e) for e in ws.lineage(member)) if s is not None and s.time < before]
        donor_step = None
        for step in sorted(steps, key=lambda s: s.time, reverse=True):
            path.append(step)
            if step.event == "replaced" and step.donor is not None and step.donor != member:
                donor_step = step
                break
        if donor_step is None:
            history = ws.history(member)  # the values it started with
            path.append(Step(member, "start", 0, 0.0, hyperparameters=history[0].hyperparameters if history else {}))
            return path
        member, before = donor_step.donor, donor_step.time
    return path


def schedule(path: list[Step]) -> list[dict[str, Any]]:
    """Hyperparameter values along an ancestry path, oldest first: ``[{"frame", "hyperparameters"}]``."""
    entries: list[dict[str, Any]] = []
    for step in reversed(path):
        if not step.hyperparameters:
            continue
        if entries and entries[-1]["hyperparameters"] == step.hyperparameters:
            continue
        frame = max(step.frame, entries[-1]["frame"]) if entries else step.frame
        entries.append({"frame": frame, "hyperparameters": dict(step.hyperparameters)})
    return entries


def family(ws: Workspace) -> list[dict[str, Any]]:
    """Every member's ancestry as plain data (for ``lineage --json``)."""
    out = []
    for member in ws.members():
        latest = ws.history(member)
        path = ancestry(ws, member)
        out.append({
            "member": member,
            "objective": latest[-1].objective if latest else None,
            "frame": latest[-1].frame if latest else None,
            "path": [asdict(s) for s in path],
        })
    return out


def render_text(tree: list[dict[str, Any]]) -> str:
    """The family tree as indented text, one block per final member."""
    lines = []
    for item in tree:
        objective = "-" if item["objective"] is None else f"{item['objective']:.4g}"
        frame = "-" if item["frame"] is None else f"{item['frame']:,}"
        lines.append(f"member {item['member']:03d}  (objective {objective} at frame {frame})")
        indent = "  "
        for step in item["path"]:
            changed = ", ".join(f"{k.rsplit('.', 1)[-1]} {_fmt(v)}" for k, v in sorted(step["changed"].items()))
            if step["event"] == "start":
                lines.append(f"{indent}└─ {step['member']:03d} started from scratch")
            elif step["event"] == "mutated":
                lines.append(f"{indent}├─ {step['member']:03d} mutated at frame {step['frame']:,}: {changed or 'no change'}")
            else:
                lines.append(f"{indent}├─ {step['member']:03d} took {step['donor']:03d}'s weights (iteration {step['donor_iteration']}) "
                             f"at frame {step['frame']:,}: {changed or 'no change'}")
                indent += "   "
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _fmt(pair: Any) -> str:
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return f"{pair[0]:.4g}->{pair[1]:.4g}"
    return "?"
