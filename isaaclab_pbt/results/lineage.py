"""Family trees and hyperparameter schedules, reconstructed from the workspace's logs (pure).

A member's *ancestry* walks back from its newest state: its own mutations, then the replacement
that gave it a donor's weights, then the donor's own ancestry before that moment, and so on until
a member that started from scratch. Each step is one lineage-log event; time (not frames) orders
the walk, because a donor's weights always predate the replacement that copied them. Every step
of a path is strictly older than the one before it, so a walk visits each entry at most once and
ends on any log, however hostile (a ping-pong of two members included): its cost is that of the
entries it prints, each member's log being parsed and sorted once per :class:`Lineage`.

The *schedule* of a member is the sequence of hyperparameter values along its ancestry, as one
learner would have seen them: what Ray Tune calls a PBT schedule, replayable with
``scripts/train.py --pbt_replay``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from ..core.workspace import Workspace

_MAX_INDENT = 8
"""Levels of indentation in the text tree: a deeper ancestry goes on at that level (its lines name their member)."""


@dataclass
class Step:
    """One event on an ancestry path."""

    member: int
    event: str
    """``replaced`` (took the donor's weights), ``mutated`` (kept its own) or ``start``."""
    frame: int
    time: float
    iteration: Optional[int] = None
    donor: Optional[int] = None
    donor_iteration: Optional[int] = None
    changed: dict[str, list[float]] = field(default_factory=dict)
    """Name to ``[old, new]``."""
    hyperparameters: dict[str, float] = field(default_factory=dict)


def _as_int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> Optional[float]:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _numbers(values: Any) -> dict[str, float]:
    """The names mapped to finite numbers in ``values`` (anything else, nested data included, is dropped)."""
    if not isinstance(values, dict):
        return {}
    return {k: n for k, v in values.items() if isinstance(k, str) and (n := _number(v)) is not None}


def _pairs(values: Any) -> dict[str, list[float]]:
    """The names mapped to an ``[old, new]`` pair of finite numbers in ``values``."""
    if not isinstance(values, dict):
        return {}
    out = {}
    for key, pair in values.items():
        if isinstance(key, str) and isinstance(pair, list) and len(pair) == 2:
            old, new = _number(pair[0]), _number(pair[1])
            if old is not None and new is not None:
                out[key] = [old, new]
    return out


def parse_step(member: int, entry: Any) -> Optional[Step]:
    """A :class:`Step` from a lineage entry, or ``None`` for an entry that is not a valid change.

    A change has an event, a frame and a finite time; a replacement also names its donor and the
    donor's iteration. Hyperparameter values that are not finite numbers are dropped, so nothing
    nested or special travels further.
    """
    if not isinstance(entry, dict) or entry.get("event") not in ("replaced", "mutated"):
        return None
    frame, when = _as_int(entry.get("frame")), _number(entry.get("time"))
    donor, donor_iteration = _as_int(entry.get("donor")), _as_int(entry.get("donor_iteration"))
    if frame is None or when is None or (entry["event"] == "replaced" and (donor is None or donor_iteration is None)):
        return None
    return Step(member, entry["event"], frame, when, _as_int(entry.get("iteration")), donor, donor_iteration,
                _pairs(entry.get("changed")), _numbers(entry.get("hyperparameters")))


class Lineage:
    """Every member's valid steps, read and sorted by time once, for walks that jump between members."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._steps: dict[int, tuple[list[float], list[Step]]] = {}

    def steps(self, member: int) -> list[Step]:
        """The member's valid steps, oldest first."""
        return self._sorted(member)[1]

    def _sorted(self, member: int) -> tuple[list[float], list[Step]]:
        if member not in self._steps:
            steps = sorted((s for s in (parse_step(member, e) for e in self.ws.lineage(member)) if s is not None),
                           key=lambda s: s.time)
            self._steps[member] = ([s.time for s in steps], steps)
        return self._steps[member]

    def ancestry(self, member: int, before: float = math.inf) -> list[Step]:
        """Steps from ``member``'s state at time ``before`` back to a start, newest first."""
        path: list[Step] = []
        while True:
            times, steps = self._sorted(member)
            donor_step = None
            for n in range(bisect.bisect_left(times, before) - 1, -1, -1):  # the steps older than ``before``
                path.append(steps[n])
                if steps[n].event == "replaced" and steps[n].donor != member:
                    donor_step = steps[n]
                    break
            if donor_step is None:
                history = self.ws.history(member)  # the values it started with
                path.append(Step(member, "start", 0, 0.0, hyperparameters=history[0].hyperparameters if history else {}))
                return path
            member, before = donor_step.donor, donor_step.time


def ancestry(ws: Workspace, member: int, before: float = math.inf) -> list[Step]:
    """:meth:`Lineage.ancestry` of one member."""
    return Lineage(ws).ancestry(member, before)


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
    tree = Lineage(ws)
    out = []
    for member in ws.members():
        latest = ws.history(member)
        out.append({
            "member": member,
            "objective": latest[-1].objective if latest else None,
            "frame": latest[-1].frame if latest else None,
            "path": [asdict(s) for s in tree.ancestry(member)],
        })
    return out


def render_text(tree: list[dict[str, Any]]) -> str:
    """The family tree as indented text, one block per final member."""
    lines = []
    for item in tree:
        objective = "-" if item["objective"] is None else f"{item['objective']:.4g}"
        frame = "-" if item["frame"] is None else f"{item['frame']:,}"
        lines.append(f"member {item['member']:03d}  (objective {objective} at frame {frame})")
        depth = 0
        for step in item["path"]:
            indent = "  " + "   " * min(depth, _MAX_INDENT)
            changed = ", ".join(f"{k.rsplit('.', 1)[-1]} {old:.4g}->{new:.4g}" for k, (old, new) in sorted(step["changed"].items()))
            if step["event"] == "start":
                lines.append(f"{indent}└─ {step['member']:03d} started from scratch")
            elif step["event"] == "mutated":
                lines.append(f"{indent}├─ {step['member']:03d} mutated at frame {step['frame']:,}: {changed or 'no change'}")
            else:
                lines.append(f"{indent}├─ {step['member']:03d} took {step['donor']:03d}'s weights (iteration {step['donor_iteration']}) "
                             f"at frame {step['frame']:,}: {changed or 'no change'}")
                depth += 1
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
