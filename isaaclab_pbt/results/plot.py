"""Pictures of a population: objective against frames with every replacement marked, and the
trajectory of each mutated hyperparameter per member.

Everything is read from the members' append-only ``history.jsonl`` and ``lineage.jsonl``, so the
whole run is drawn even after old checkpoints were cleaned up.
"""

from __future__ import annotations

import bisect
import io
import math
import os
import uuid
from typing import Any, Optional

from ..core.workspace import Workspace
from .lineage import Lineage

PLOTS_DIR = "plots"
DEFAULT_NAME = "population.png"
_MAX_LABELS = 40
"""Replacements per member labelled with the donor's number; beyond that only the markers (coloured by donor) stay readable."""


def population_data(ws: Workspace) -> dict[str, Any]:
    """The data behind the figure: per member its (frame, objective) and hyperparameter series and its replacements."""
    members = {}
    lineage = Lineage(ws)
    for idx in ws.members():
        history = ws.history(idx)
        if not history:
            continue
        steps = lineage.steps(idx)
        replacements = [{"frame": s.frame, "donor": s.donor} for s in steps if s.event == "replaced"]
        changes = [(s.frame, s.hyperparameters) for s in steps if s.hyperparameters]
        # values change at the replacement frame, right after the record published at that frame
        points = sorted([(r.frame, 0, r.hyperparameters) for r in history] + [(f, 1, hp) for f, hp in changes],
                        key=lambda p: p[:2])
        keys = sorted({k for _, _, hp in points for k in hp})
        members[idx] = {
            "frames": [r.frame for r in history],
            "objective": [math.nan if r.objective is None else r.objective for r in history],
            "hp_frames": [f for f, _, _ in points],
            "hyperparameters": {k: [_number(hp.get(k)) for _, _, hp in points] for k in keys},
            "replacements": replacements,
        }
    best: dict[int, float] = {}
    for data in members.values():
        for frame, value in zip(data["frames"], data["objective"], strict=True):
            if not math.isnan(value):
                best[frame] = max(best.get(frame, -math.inf), value)
    return {"members": members, "best": sorted(best.items())}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _write_in_plots_folder(root: str, name: str, data: bytes) -> str:
    """Write ``<root>/plots/<name>`` atomically, never through a link: a planted ``plots`` link or file is refused.

    The folder is opened once without following links and the file is created and renamed
    relative to that handle, so swapping the folder for a link meanwhile changes nothing.
    """
    folder = os.path.join(root, PLOTS_DIR)
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise ValueError(f"{folder} is not a folder of the workspace (a link or a file?); give -o to write elsewhere") from None
    try:
        tmp = f".{name}.{uuid.uuid4().hex}.tmp"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            os.unlink(tmp, dir_fd=fd)
            raise
    finally:
        os.close(fd)
    return os.path.join(folder, name)


def plot_population(root: str, out: Optional[str] = None, title: str = "") -> dict[str, Any]:
    """Draw the population in ``root`` into ``out`` (PNG, PDF or SVG); returns the data drawn and ``output``, the file written.

    Without ``out`` the figure goes into the workspace, ``<root>/plots/population.png``: a plot
    is part of the run's results, not of whatever folder the command was started from.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = population_data(Workspace(root))
    members = data["members"]
    if not members:
        raise ValueError(f"no member of '{root}' has published a record yet")
    keys = sorted({k for m in members.values() for k in m["hyperparameters"]})
    cols = 2
    rows = math.ceil(len(keys) / cols)
    fig = plt.figure(figsize=(13, 5 + 2.6 * rows), constrained_layout=True)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[2.2] + [1] * rows)
    ax = fig.add_subplot(grid[0, :])
    colours = plt.get_cmap("tab20" if len(members) > 10 else "tab10")
    colour = {idx: colours(i % colours.N) for i, idx in enumerate(sorted(members))}

    for idx, m in sorted(members.items()):
        frames = [f / 1e6 for f in m["frames"]]
        ax.plot(frames, m["objective"], "-o", ms=3, lw=1.5, color=colour[idx], label=f"member {idx:03d}")
        # on the member's own point at each replacement: the record published just before the swap
        marks = [(rep["frame"] / 1e6, m["objective"][max(bisect.bisect_right(m["frames"], rep["frame"]) - 1, 0)], rep["donor"])
                 for rep in m["replacements"]]
        if marks:
            ax.scatter([x for x, _, _ in marks], [y for _, y, _ in marks], marker="v", s=80, zorder=5,
                       color=[colour.get(d, "grey") for _, _, d in marks], edgecolors="black", linewidths=0.8)
        for x, y, donor in (marks if len(marks) <= _MAX_LABELS else []):
            ax.annotate(f"← {donor:03d}", (x, y), textcoords="offset points", xytext=(5, -12), fontsize=8, color=colour[idx])
    if data["best"]:
        ax.plot([f / 1e6 for f, _ in data["best"]], [v for _, v in data["best"]], "--", color="black", lw=1.2,
                label="population best")
    ax.scatter([], [], marker="v", color="white", edgecolors="black", label="replaced by a leader (marker colour: donor)")
    ax.set_xlabel("environment frames (millions)")
    ax.set_ylabel("objective (interval mean)")
    ax.set_title(title or f"PBT population: {len(members)} members, "
                          f"{sum(len(m['replacements']) for m in members.values())} replacements")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, ncol=2 if len(members) > 8 else 1)

    for n, key in enumerate(keys):
        hax = fig.add_subplot(grid[1 + n // cols, n % cols])
        values = []
        for idx, m in sorted(members.items()):
            series = m["hyperparameters"].get(key)
            if series:
                hax.step([f / 1e6 for f in m["hp_frames"]], series, where="post", color=colour[idx], lw=1.6, alpha=0.85)
                values += [v for v in series if not math.isnan(v)]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            hax.set_yscale("log")
        hax.set_title(key.rsplit(".", 1)[-1], fontsize=10)
        hax.set_xlabel("frames (millions)", fontsize=8)
        hax.grid(alpha=0.3)
        hax.tick_params(labelsize=8)
    buffer = io.BytesIO()
    fmt = os.path.splitext(out or DEFAULT_NAME)[1].lstrip(".").lower() or "png"
    try:
        fig.savefig(buffer, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    if out is None:
        out = _write_in_plots_folder(root, DEFAULT_NAME, buffer.getvalue())
    else:
        with open(out, "wb") as f:
            f.write(buffer.getvalue())
    return {**data, "output": out}
