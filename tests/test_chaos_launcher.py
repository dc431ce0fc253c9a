"""The launcher under failure, with real processes: refusals, crashes spread over time, a killed launcher, a launch run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.launch.plan import WorkerSpec
from isaaclab_pbt.launch.supervisor import Supervisor

from .conftest import ROOT, child_env

LAUNCH = str(ROOT / "scripts" / "launch_pbt.py")


def _launch(tmp_path, *train_args, tag="t", **kwargs):
    return subprocess.run([sys.executable, LAUNCH, "--num_policies", "2", "--tag", tag, "--backoff", "0.2", "--",
                           "--num_envs=32", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", *train_args],
                          capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=600, **kwargs)


@pytest.mark.adversarial("launcher failures survived")
def test_a_member_that_refuses_its_settings_stops_the_launch_at_once_with_its_line(tmp_path):
    out = _launch(tmp_path, "agent.pbt.mutation_rate=2", "--max_iterations=4")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith(
        "launch: member 00"), out.stderr
    assert "refused to start: train: error: agent.pbt.mutation_rate: must be in [0, 1], got 2.0" in out.stderr
    for n in range(2):  # never restarted: a usage error does not go away
        assert (tmp_path / "logs" / "launch" / "t" / f"member{n:03d}.log").read_text().count("[launcher] start:") == 1


@pytest.mark.adversarial("launcher failures survived")
def test_the_same_launch_run_twice_refuses_and_deletes_nothing(tmp_path):
    first = _launch(tmp_path, "--max_iterations=4", "agent.pbt.interval_steps=512")
    assert first.returncode == 0, first.stdout[-3000:]
    ws = Workspace(str(tmp_path / "ws"))
    before = {i: sorted(os.listdir(ws.member_dir(i))) for i in range(2)}
    again = _launch(tmp_path, "--max_iterations=4", "agent.pbt.interval_steps=512", tag="again")
    assert again.returncode == 2, again.stdout[-3000:]
    assert "holds member" in again.stderr and "pass --checkpoint to resume it, or use a new workspace" in again.stderr
    assert {i: sorted(os.listdir(ws.member_dir(i))) for i in range(2)} == before


def _crasher(tmp_path, seconds: float) -> WorkerSpec:
    code = f"import time; time.sleep({seconds}); raise SystemExit(3)"
    return WorkerSpec(0, [sys.executable, "-c"], [code], {}, "crash", str(tmp_path / "logs" / "member000.log"))


def _supervise(sup: Supervisor, until: float) -> None:
    sup.start()
    while not sup.done() and time.monotonic() < until:
        time.sleep(0.05)
        sup.poll()
    sup.stop()


@pytest.mark.adversarial("launcher failures survived")
def test_restarts_are_bounded_per_time_window_not_per_run(tmp_path):
    # crashes 0.4 s apart: with a 1 s window at most 3 are recent, so the member is never given up
    spread = Supervisor([_crasher(tmp_path, 0.4)], str(tmp_path / "ws"), max_restarts=3, backoff_s=0.01, restart_window_s=1.0)
    _supervise(spread, time.monotonic() + 6.0)
    assert spread.members[0].restarts >= 6 and spread.members[0].state == "stopped"
    # the same crashes counted over an hour: given up after 3 restarts
    tight = Supervisor([_crasher(tmp_path, 0.4)], str(tmp_path / "ws"), max_restarts=3, backoff_s=0.01, restart_window_s=3600)
    _supervise(tight, time.monotonic() + 30.0)
    assert tight.members[0].restarts == 3 and tight.members[0].state == "failed"


@pytest.mark.adversarial("launcher failures survived")
def test_a_member_that_cannot_even_start_leaves_the_launcher_alive(tmp_path):
    spec = WorkerSpec(0, [str(tmp_path / "no-such-python")], [], {}, "x", str(tmp_path / "logs" / "member000.log"))
    sup = Supervisor([spec], str(tmp_path / "ws"), max_restarts=2, backoff_s=0.01)
    _supervise(sup, time.monotonic() + 10.0)
    assert sup.members[0].state == "failed" and sup.members[0].restarts == 2


@pytest.mark.adversarial("launcher failures survived")
def test_a_killed_launcher_leaves_no_member_even_a_stopped_one(tmp_path):
    launcher = subprocess.Popen(
        [sys.executable, LAUNCH, "--num_policies", "2", "--", "--num_envs=32", "--max_iterations=100000",
         f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(), cwd=tmp_path)
    ws = Workspace(str(tmp_path / "ws"))
    end = time.monotonic() + 300
    while not all(ws.latest(i) for i in range(2)):
        assert time.monotonic() < end and launcher.poll() is None
        time.sleep(0.2)
    pids = [ws.latest(i).pid for i in range(2)]
    os.kill(pids[1], signal.SIGSTOP)
    launcher.kill()
    launcher.wait()
    end = time.monotonic() + 30
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < end, [psutil.Process(p).status() for p in pids if psutil.pid_exists(p)]
        time.sleep(0.1)


@pytest.mark.adversarial("launcher failures survived")
def test_a_hung_member_is_killed_and_restarted(tmp_path):
    code = "import os, sys, time; print('started', flush=True); time.sleep(600)"  # alive, silent: hung
    spec = WorkerSpec(0, [sys.executable, "-c"], [code], {}, "hang", str(tmp_path / "logs" / "member000.log"))
    sup = Supervisor([spec], str(tmp_path / "ws"), max_restarts=2, backoff_s=0.01, hang_timeout_s=1.0)
    _supervise(sup, time.monotonic() + 60.0)
    m = sup.members[0]
    assert m.state == "failed" and m.restarts == 2 and m.exit_codes == [-signal.SIGKILL] * 3
    assert (tmp_path / "logs" / "member000.log").read_text().count("\nstarted\n") == 3
