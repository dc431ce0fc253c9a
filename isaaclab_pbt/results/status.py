"""The population at a glance: one row per member from the workspace, as a table or JSON.

Everything comes through :class:`~isaaclab_pbt.core.workspace.Workspace`, which skips bad files, and
lineage entries are checked by :func:`~isaaclab_pbt.results.lineage.parse_step`, so a hostile workspace
yields rows, never a crash.

A member's state says what its files show: ``finished`` once it logged the end of its training
(a lineage entry ``{"event": "finished", ...}`` newer than its last record), ``stale`` when it has
not published for much longer than it usually takes between two records (a member of a slow task
publishes rarely, one of a fast task often: the threshold follows the member's own recent spacing),
``alive`` otherwise, and ``no record`` before its first publish.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Optional

from ..core.workspace import Workspace
from .lineage import Lineage, Step

SILENT_FACTOR = 3.0
"""A member is stale after this many times its median recent gap between two records."""
MIN_SILENT_S = 60.0
"""... but never sooner: a loaded machine or a restart delays one publish by that much without anything wrong."""
RECENT_GAPS = 10


def change_data(step: Optional[Step]) -> Optional[dict[str, Any]]:
    """The last replacement or mutation as plain data (``status --json``), or ``None``."""
    if step is None:
        return None
    return {"event": step.event, "time": step.time, "frame": step.frame, "iteration": step.iteration,
            "donor": step.donor, "donor_iteration": step.donor_iteration,
            "changed": {k: {"old": old, "new": new} for k, (old, new) in sorted(step.changed.items())}}


def describe_change(change: Optional[dict[str, Any]]) -> str:
    """``'from 002 @ 61,440'`` for a replacement, ``'mutated @ 61,440'`` for a self-mutation, ``'-'`` for none."""
    if change is None:
        return "-"
    if change["event"] == "replaced":
        return f"from {change['donor']:03d} @ {change['frame']:,}"
    return f"mutated @ {change['frame']:,}"


def empty_row(idx: int) -> dict[str, Any]:
    """The row of a member that has published nothing yet."""
    return {"member": idx, "objective": None, "iteration": None, "frame": None, "replacements": 0,
            "last_replacement": None, "age_s": None, "stale_after_s": None, "state": "no record"}


def _recent_gaps(times: list[float]) -> list[float]:
    recent = times[-(RECENT_GAPS + 1):]
    return [b - a for a, b in zip(recent, recent[1:], strict=False) if b > a]


def _finished_at(entries: list[Any]) -> Optional[float]:
    """When the member last logged the end of its training, if it did."""
    times = [e["time"] for e in entries if isinstance(e, dict) and e.get("event") == "finished"
             and isinstance(e.get("time"), (int, float)) and not isinstance(e["time"], bool) and math.isfinite(e["time"])]
    return max(times, default=None)


def population_rows(root: str, stale_after_s: Optional[float] = None, now: Optional[float] = None) -> list[dict[str, Any]]:
    """One dict per member folder: member, objective, iteration, frame, replacements, last replacement, state.

    ``stale_after_s`` fixes the silence after which a member is ``stale``; by default it is derived
    per member from its recent publish spacing (the population's, for a member with one record).
    """
    ws = Workspace(root)
    lineage = Lineage(ws)
    now = time.time() if now is None else now
    members = ws.members()
    gaps = {idx: _recent_gaps([r.time for r in ws.history(idx)]) for idx in members}
    everyone = [g for own in gaps.values() for g in own]
    rows = []
    for idx in members:
        record = ws.latest(idx)
        steps = lineage.steps(idx)
        row = empty_row(idx)
        row.update(replacements=sum(1 for s in steps if s.event == "replaced"),
                   last_replacement=change_data(steps[-1] if steps else None))
        if record is not None:
            spacing = gaps[idx] or everyone
            limit = stale_after_s if stale_after_s is not None else (
                max(SILENT_FACTOR * statistics.median(spacing), MIN_SILENT_S) if spacing else None)
            finished = _finished_at(ws.lineage(idx))
            age = now - record.time
            if finished is not None and finished >= record.time:
                state = "finished"
            else:
                state = "stale" if limit is not None and age > limit else "alive"
            row.update(objective=record.objective, iteration=record.iteration, frame=record.frame, age_s=round(age, 1),
                       stale_after_s=None if limit is None else round(limit, 1), state=state)
        rows.append(row)
    return rows


def console():
    """A rich console, 120 columns wide when writing to a file or pipe (rich would cut tables at 80)."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


_STATE_STYLE = {"alive": "green", "running": "green", "finished": "cyan", "stale": "yellow", "restarting": "yellow"}


def render_table(rows: list[dict[str, Any]], title: str, extra: Optional[dict[str, dict[int, str]]] = None):
    """A rich ``Table`` of :func:`population_rows`, the best objective highlighted.

    ``extra`` adds columns before the state: column name to ``{member: text}``.
    """
    from rich.table import Table

    extra = extra or {}
    table = Table(title=title)
    columns = [("member", "right"), ("objective", "right"), ("iter", "right"), ("frame", "right"),
               ("replaced", "right"), ("last replacement", "left"), *((name, "right") for name in extra), ("state", "left")]
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    scores = [r["objective"] for r in rows if r["objective"] is not None]
    best = max(scores) if scores else None
    for r in rows:
        objective = "-" if r["objective"] is None else f"{r['objective']:.4f}"
        style = "bold green" if best is not None and r["objective"] == best else None
        state_style = _STATE_STYLE.get(r["state"], "red")
        table.add_row(
            f"{r['member']:03d}",
            objective,
            "-" if r["iteration"] is None else str(r["iteration"]),
            "-" if r["frame"] is None else f"{r['frame']:,}",
            str(r["replacements"]),
            describe_change(r["last_replacement"]),
            *(values.get(r["member"], "") for values in extra.values()),
            f"[{state_style}]{r['state']}[/]",
            style=style,
        )
    return table
