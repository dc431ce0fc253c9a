"""Running members as local processes and keeping them alive.

Each member runs in its own process session (its own process group), so Ctrl-C in the launcher's
terminal reaches only the launcher, which then stops every member itself: SIGTERM to each group,
SIGKILL after a grace period (a stopped member is continued first, so it can exit). Members get
SIGKILL from the kernel if the launcher itself is killed (``PR_SET_PDEATHSIG`` on Linux), which
ends even a stopped member, so none is left orphaned.

A member that exits with code 2 refused its input (a bad setting, a workspace that holds another
run, a policy_idx already taken): restarting cannot help, so the launch stops and shows that
member's one-line error. Any other non-zero exit is a crash: the member comes back from its newest
checkpoint that loads, after a backoff, as long as it crashed fewer than ``max_restarts`` times
within the last ``restart_window_s`` seconds; the backoff counts only those recent crashes, so a
member that ran well for a window starts afresh. A member whose output has not grown for
``hang_timeout_s`` seconds is taken for hung: killed, and restarted like a crash. A PBT restart is an ``execv`` inside the member:
the same process, so it is never mistaken for a crash.
"""

from __future__ import annotations

import ctypes
import glob
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Mapping, Optional, Sequence

import yaml

from ..core.workspace import Workspace
from ..results.status import empty_row, population_rows, render_table
from .plan import WorkerSpec, env_for, resume_argv

TERMINAL = ("finished", "failed", "stopped", "refused")
USAGE_ERROR = 2
"""The exit code of a member that refused its input (see :mod:`isaaclab_pbt.core.errors`)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: also ends a stopped child


@dataclass
class Member:
    spec: WorkerSpec
    state: str = "starting"
    proc: Optional[subprocess.Popen] = None
    restarts: int = 0
    next_start: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    log: Optional[IO[bytes]] = None
    crash_times: list[float] = field(default_factory=list)
    error: str = ""
    started: float = 0.0


class Supervisor:
    """Starts, watches, restarts and stops the members of one population on this machine."""

    def __init__(self, specs: Sequence[WorkerSpec], workspace_root: str, max_restarts: int = 3,
                 backoff_s: float = 2.0, backoff_max_s: float = 60.0, grace_s: float = 15.0,
                 restart_window_s: float = 3600.0, hang_timeout_s: float = 0.0):
        self.members = [Member(s) for s in specs]
        self.workspace = Workspace(workspace_root)
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.hang_timeout_s = hang_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.grace_s = grace_s
        self.stop_signal: Optional[int] = None

    # -- processes ----------------------------------------------------------------------------
    def _spawn(self, m: Member, argv: list[str], now: float) -> None:
        """Start the member; a failure to start (a full disk, a missing interpreter) counts as a crash."""
        try:
            os.makedirs(os.path.dirname(m.spec.log_path), exist_ok=True)
            if m.log is None:
                m.log = open(m.spec.log_path, "ab")  # noqa: SIM115 (open for the member's whole life, closed at its end)
            m.log.write(f"\n[launcher] start: {' '.join(argv)}\n".encode())
            m.log.flush()
            m.proc = subprocess.Popen(argv, stdout=m.log, stderr=subprocess.STDOUT, env=env_for(m.spec),
                                      start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as e:
            print(f"launch: member {m.spec.idx:03d} could not start: {e}", file=sys.stderr)
            m.proc = None
            self._crashed(m, now)
            return
        m.state, m.started = "running", time.time()

    def _hung(self, m: Member) -> bool:
        """True when the member's output has not grown for ``hang_timeout_s`` (every library prints each iteration)."""
        if self.hang_timeout_s <= 0 or m.proc is None:
            return False
        try:
            last = max(os.stat(m.spec.log_path).st_mtime, m.started)
        except OSError:
            last = m.started
        return time.time() - last > self.hang_timeout_s

    def _crashed(self, m: Member, now: float) -> None:
        """Schedule a restart if the member crashed fewer than ``max_restarts`` times within the window."""
        m.crash_times = [t for t in m.crash_times if now - t < self.restart_window_s] + [now]
        if len(m.crash_times) > self.max_restarts:
            m.state = "failed"
            return
        m.restarts += 1
        m.state = "restarting"
        m.next_start = now + min(self.backoff_s * 2 ** (len(m.crash_times) - 1), self.backoff_max_s)

    def start(self) -> None:
        now = time.monotonic()
        for m in self.members:
            self._spawn(m, m.spec.argv, now)

    def poll(self, now: Optional[float] = None) -> None:
        """Notice exits, schedule restarts and start members whose backoff has passed."""
        now = time.monotonic() if now is None else now
        for m in self.members:
            if self._hung(m) and self.stop_signal is None:
                print(f"launch: member {m.spec.idx:03d} printed nothing for {self.hang_timeout_s:g} s: killing it", file=sys.stderr)
                _signal_group(m.proc, signal.SIGKILL)
                m.proc.wait()
            if m.proc is not None and (code := m.proc.poll()) is not None:
                m.proc = None
                m.exit_codes.append(code)
                if code == 0:
                    m.state = "finished"
                elif self.stop_signal is not None:
                    m.state = "stopped"
                elif code == USAGE_ERROR:
                    m.state, m.error = "refused", last_line(m.spec.log_path)
                else:
                    self._crashed(m, now)
            if m.state == "restarting" and now >= m.next_start and self.stop_signal is None:
                self._spawn(m, resume_argv(m.spec, self.workspace), now)

    def stop(self) -> None:
        """SIGTERM every member's process group, SIGKILL what is left after the grace period."""
        for m in self.members:
            if m.state == "restarting":
                m.state = "stopped"
        running = [m for m in self.members if m.proc is not None]
        for m in running:
            _signal_group(m.proc, signal.SIGTERM)
            _signal_group(m.proc, signal.SIGCONT)  # a stopped member handles SIGTERM only once it runs
        deadline = time.monotonic() + self.grace_s
        for m in running:
            try:
                m.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(m.proc, signal.SIGKILL)
                m.proc.wait()
        self.poll()
        for m in self.members:
            if m.state not in TERMINAL:
                m.state = "stopped"

    def done(self) -> bool:
        return all(m.state in TERMINAL for m in self.members)

    def run(self, refresh_s: float = 1.0, show=None) -> int:
        """Supervise until every member ended or a signal arrived; returns the launcher's exit code."""
        def on_signal(signum, _frame):
            self.stop_signal = signum

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not self.done() and self.stop_signal is None and not self.refused():
                time.sleep(refresh_s)
                self.poll()
                if show is not None:
                    show(self)
            if self.stop_signal is not None or self.refused():
                self.stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for m in self.members:
                if m.log is not None:
                    m.log.close()
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        if self.refused():
            return USAGE_ERROR
        return 0 if all(m.state == "finished" for m in self.members) else 1

    def refused(self) -> list[Member]:
        """Members that exited with a usage error: the launch cannot go on."""
        return [m for m in self.members if m.state == "refused"]

    # -- reporting ----------------------------------------------------------------------------
    def summary(self) -> list[str]:
        """One line per member: how it ended, its exit codes and restarts."""
        lines = []
        for m in self.members:
            codes = ", ".join(map(str, m.exit_codes)) or "-"
            lines.append(f"member {m.spec.idx:03d}: {m.state} (exit codes {codes}; {m.restarts} crash restart(s)); log {m.spec.log_path}")
        return lines


def last_line(path: str) -> str:
    """The last non-empty line of a member's log: its one-line error when it refused its input."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def progress(workspace_root: str, run_names: Sequence[str]) -> tuple[int, Optional[int]]:
    """Frames trained by the population so far and, once every member wrote its config, the total."""
    done = sum(r["frame"] or 0 for r in population_rows(workspace_root))
    logs = os.path.join(os.path.dirname(os.path.abspath(workspace_root)), "logs", "rl_games")
    total = 0
    for run in run_names:
        found = glob.glob(os.path.join(logs, "*", run, "params", "agent.yaml"))
        try:
            with open(found[0], encoding="utf-8") as f:
                cfg = yaml.safe_load(f)["params"]["config"]
            total += int(cfg["max_epochs"]) * int(cfg["num_actors"]) * int(cfg["horizon_length"])
        except (IndexError, OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            return done, None
    return done, total


def table(workspace_root: str, states: Mapping[int, str], run_names: Sequence[str],
          restarts: Optional[Mapping[int, int]] = None):
    """The status table with the launcher's view (process state, crash restarts if known) and the progress."""
    rows = {r["member"]: r for r in population_rows(workspace_root)}
    for idx, state in states.items():
        rows.setdefault(idx, empty_row(idx))["state"] = state
    done, total = progress(workspace_root, run_names)
    share = f" ({100 * done / total:.0f}%)" if total else ""
    title = f"PBT population: {done:,} / {total:,} frames{share}" if total else f"PBT population: {done:,} frames"
    extra = None if restarts is None else {"restarts": {k: str(restarts.get(k, 0)) for k in rows}}
    return render_table([rows[k] for k in sorted(rows)], title, extra=extra)


def members_table(workspace_root: str, members: Sequence[Member]):
    """:func:`table` for the members of a :class:`Supervisor`."""
    return table(workspace_root, {m.spec.idx: m.state for m in members}, [m.spec.run_name for m in members],
                 {m.spec.idx: m.restarts for m in members})
