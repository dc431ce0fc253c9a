"""The population at a glance: one row per member from the workspace, as a table or JSON.

Everything comes through :class:`~isaaclab_pbt.workspace.Workspace`, which skips bad files, and
lineage entries are formatted defensively, so a hostile workspace yields rows, never a crash.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from .workspace import Workspace


def _last_change(entries: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    for entry in reversed(entries):
        if entry.get("event") in ("replaced", "mutated"):
            return entry
    return None


def describe_change(entry: Optional[dict[str, Any]]) -> str:
    """``'from 002 @ 61,440'`` for a replacement, ``'mutated @ 61,440'`` for a self-mutation."""
    if entry is None:
        return "-"
    frame = entry.get("frame")
    where = f"{frame:,}" if isinstance(frame, int) and not isinstance(frame, bool) else "?"
    if entry.get("event") == "replaced":
        donor = entry.get("donor")
        who = f"{donor:03d}" if isinstance(donor, int) and not isinstance(donor, bool) else "?"
        return f"from {who} @ {where}"
    return f"mutated @ {where}"


def empty_row(idx: int) -> dict[str, Any]:
    """The row of a member that has published nothing yet."""
    return {"member": idx, "objective": None, "iteration": None, "frame": None, "replacements": 0,
            "last_replacement": "-", "state": "no record"}


def population_rows(root: str, stale_after_s: float = 3600.0, now: Optional[float] = None) -> list[dict[str, Any]]:
    """One dict per member folder: member, objective, iteration, frame, replacements, last replacement, state."""
    ws = Workspace(root)
    now = time.time() if now is None else now
    rows = []
    for idx in ws.members():
        record = ws.latest(idx)
        history = ws.lineage(idx)
        last = _last_change(history)
        row = empty_row(idx)
        row.update(replacements=sum(1 for e in history if e.get("event") == "replaced"), last_replacement=describe_change(last))
        if record is not None:
            row.update(
                objective=record.objective,
                iteration=record.iteration,
                frame=record.frame,
                age_s=round(now - record.time, 1),
                state="alive" if now - record.time <= stale_after_s else "stale",
            )
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
            r["last_replacement"],
            *(values.get(r["member"], "") for values in extra.values()),
            f"[{state_style}]{r['state']}[/]",
            style=style,
        )
    return table
