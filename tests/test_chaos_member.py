"""Chaos on real member processes: SIGKILL at random moments (mid-publish included), two processes
given one policy_idx, a fresh start over a finished run, and a full disk."""

from __future__ import annotations

import errno
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rl_games import checkpoint

from .conftest import TRAIN, child_env, start_member

INTERVAL = 4096  # 4 epochs of 64 envs x 16 steps


def _args(tmp_path: Path, epochs: int, *extra: str) -> list[str]:
    return ["--headless", "--num_envs=64", f"--max_iterations={epochs}", "--device=cpu", "--seed=0",
            "agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
            f"agent.pbt.interval_steps={INTERVAL}", "agent.pbt.num_policies=1", "agent.pbt.policy_idx=0",
            "agent.pbt.min_initialized=1", "agent.pbt.keep_checkpoints=2", *extra]


def _wait(condition, proc, timeout=300.0, step=0.01):
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"member exited early ({proc.returncode})"
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(step)


def _logged_iterations(log: Path) -> list[int]:
    return [int(m) for m in re.findall(r"PBT member 000 iteration (\d+)", log.read_text(errors="replace"))]


@pytest.mark.adversarial("kills survived")
def test_sigkill_at_random_moments_loses_at_most_one_interval(tmp_path, adversary_figure):
    rng = random.Random(int(time.time()))
    ws = Workspace(str(tmp_path / "ws"), 1)
    folder = Path(ws.member_dir(0))
    args, kills, lost = _args(tmp_path, 240), 0, []
    proc = start_member(tmp_path, args, "run0.log")
    for n, moment in enumerate(("mid-publish", "random", "random")):
        _wait(lambda: ws.latest(0) is not None, proc)
        start = ws.latest(0).iteration
        if moment == "mid-publish":  # right after a temporary file of the next publish appears
            _wait(lambda: any(p.name.endswith(".tmp") for p in folder.iterdir()), proc, step=0.001)
        else:
            _wait(lambda start=start: ws.latest(0).iteration > start, proc)
            time.sleep(rng.uniform(0.0, 3.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills += 1
        ticked = max(_logged_iterations(tmp_path / f"run{n}.log"), default=0)
        newest = Workspace(ws.root, 1).latest(0)
        lost.append(ticked - newest.iteration)  # intervals the member ticked that are not on disk
        resume = tmp_path / f"resume{n}.pth"
        shutil.copy(ws.weights_path(0, newest.iteration), resume)  # as a launcher would: its newest published state
        proc = start_member(tmp_path, [*args, f"--checkpoint={resume}"], f"run{n + 1}.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / f"run{kills}.log").read_text()[-3000:]
    assert kills == 3
    adversary_figure("intervals lost per kill", max(lost))
    assert max(lost) <= 1, lost
    # consistent: the newest record's weights load safely, no temporary file is left, history has every iteration
    reader = Workspace(ws.root)
    final = reader.latest(0)
    assert final.iteration == 240 * 1024 // INTERVAL
    checkpoint.load(reader.weights_path(0, final.iteration))
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert sorted({r.iteration for r in reader.history(0)}) == list(range(1, final.iteration + 1))
    assert len({r.run for r in reader.history(0)}) == 1  # one member run across its restarts


@pytest.mark.adversarial("kills survived")
def test_a_second_process_with_the_same_policy_idx_is_refused(tmp_path):
    ws = Workspace(str(tmp_path / "ws"), 1)
    first = start_member(tmp_path, _args(tmp_path, 400), "first.log")
    try:
        _wait(lambda: ws.latest(0) is not None, first)
        resume = tmp_path / "resume.pth"
        shutil.copy(ws.weights_path(0, ws.latest(0).iteration), resume)
        second = subprocess.run([sys.executable, TRAIN, *_args(tmp_path, 400), f"--checkpoint={resume}"],
                                cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        [line] = [ln for ln in second.stderr.splitlines() if "error:" in ln]
        assert "policy_idx: 0 is already trained by another process" in line
        assert first.poll() is None  # the first one trains on, alone
        before = ws.latest(0).iteration
        _wait(lambda: ws.latest(0).iteration > before, first)
    finally:
        first.kill()
        first.wait()
    assert len({r.run for r in ws.history(0)}) == 1


@pytest.mark.adversarial("kills survived")
def test_a_fresh_start_over_a_finished_run_is_refused_and_deletes_nothing(tmp_path):
    ws = Workspace(str(tmp_path / "ws"), 1)
    proc = start_member(tmp_path, _args(tmp_path, 12), "first.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    before = {p.name: p.read_bytes() for p in Path(ws.member_dir(0)).iterdir() if p.is_file()}
    again = subprocess.run([sys.executable, TRAIN, *_args(tmp_path, 12)], cwd=tmp_path, env=child_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2, again.stderr[-2000:]
    [line] = [ln for ln in again.stderr.splitlines() if "error:" in ln]
    assert "records of an earlier run" in line and "--checkpoint" in line
    assert {p.name: p.read_bytes() for p in Path(ws.member_dir(0)).iterdir() if p.is_file()} == before


def _file_size_limit(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.adversarial("full disks survived")
def test_a_full_disk_ends_the_member_with_one_line_and_a_readable_workspace(tmp_path):
    """RLIMIT_FSIZE is the real constraint used: the kernel refuses a file growing past it (EFBIG), as a full disk would."""
    ws = Workspace(str(tmp_path / "ws"), 1)
    proc = start_member(tmp_path, _args(tmp_path, 12), "sized.log")
    assert proc.wait(timeout=600) == 0
    size = os.path.getsize(ws.weights_path(0, ws.latest(0).iteration))
    shutil.rmtree(tmp_path / "ws")
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)
    # a limit below one weights file: the first publish cannot complete
    full = subprocess.run([sys.executable, TRAIN, *_args(tmp_path, 400)], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(size // 2))
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-3000:]
    [line] = [ln for ln in full.stderr.splitlines() if "error:" in ln]
    assert "agent.pbt.directory" in line and "File too large" in line
    reader = Workspace(ws.root)
    assert reader.latest(0) is None and not [n for n in os.listdir(ws.member_dir(0)) if n.endswith(".tmp")]


@pytest.mark.adversarial("kills survived")
def test_a_corrupt_newest_checkpoint_is_refused_with_one_line(tmp_path):
    ws = Workspace(str(tmp_path / "ws"), 1)
    proc = start_member(tmp_path, _args(tmp_path, 12), "first.log")
    assert proc.wait(timeout=600) == 0
    newest = ws.latest(0).iteration
    corrupt = tmp_path / "newest.pth"
    corrupt.write_bytes(Path(ws.weights_path(0, newest)).read_bytes()[:1000])  # cut short by a kill
    before = {p.name: p.read_bytes() for p in Path(ws.member_dir(0)).iterdir() if p.is_file()}
    resumed = subprocess.run([sys.executable, TRAIN, *_args(tmp_path, 24), f"--checkpoint={corrupt}"], cwd=tmp_path,
                             env=child_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    [line] = [ln for ln in resumed.stderr.splitlines() if "error:" in ln]
    assert "--checkpoint" in line
    assert {p.name: p.read_bytes() for p in Path(ws.member_dir(0)).iterdir() if p.is_file()} == before


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MiB filesystem (tmpfs) for the workspace; needs the right to mount (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small filesystem here (not root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.mark.adversarial("full disks survived")
def test_a_disk_that_fills_up_mid_run_ends_the_member_with_one_line_and_keeps_its_records(tmp_path, small_disk):
    """ENOSPC for real: another program fills the workspace's filesystem while the member trains."""
    ws = Workspace(str(small_disk / "ws"), 1)
    proc = start_member(tmp_path, _args(small_disk, 400), "full.log")
    try:
        _wait(lambda: ws.latest(0) is not None and ws.latest(0).iteration >= 2, proc)
        with open(small_disk / "filler", "wb") as f:  # what a neighbour's job does to a shared disk
            with pytest.raises(OSError) as full:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            assert full.value.errno == errno.ENOSPC
        kept = ws.latest(0).iteration
        assert proc.wait(timeout=300) == 2
    finally:
        proc.kill()
        proc.wait()
    out = (tmp_path / "full.log").read_text(errors="replace")
    assert "Traceback" not in out, out[-3000:]
    [line] = [ln for ln in out.splitlines() if "error:" in ln]
    assert "agent.pbt.directory" in line and "No space left on device" in line
    # what was published before the disk filled is intact: the newest record's weights load, history has every line
    reader = Workspace(ws.root)
    newest = reader.latest(0)
    assert newest is not None and newest.iteration >= kept
    checkpoint.load(reader.weights_path(0, newest.iteration))
    assert [r.iteration for r in reader.history(0)] == list(range(1, newest.iteration + 1))
    assert not [n for n in os.listdir(ws.member_dir(0)) if n.endswith(".tmp")]
