"""The launcher: planning, bad input, real local populations that survive SIGKILL, SIGTERM cleanup, Ray."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from isaaclab_pbt.core.workspace import Record, Workspace
from isaaclab_pbt.launch.plan import plan_workers, resume_argv

from .conftest import ROOT, child_env

LAUNCH = str(ROOT / "scripts" / "launch_pbt.py")
BIG_NET = "agent.params.network.mlp.units=[512,512]"  # bigger files: a kill can land inside a checkpoint write


def _launch(*args, **kw):
    return subprocess.run([sys.executable, LAUNCH, *args], capture_output=True, text=True, env=child_env(), timeout=120, **kw)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num_policies", "0"], "--num_policies: must be at least 1, got 0"),
        (["--num_policies", "2", "--gpus", "0,0"], "--gpus: GPU 0 listed twice in '0,0'"),
        (["--num_policies", "2", "--gpus", "0,,1"], "--gpus: expected comma-separated GPU indices"),
        (["--num_policies", "3", "--gpus", "0", "--per_gpu", "2"], "--per_gpu: 2 x 1 GPUs hold 2 members, fewer than --num_policies 3"),
        (["--num_policies", "2", "--per_gpu", "1"], "--per_gpu: needs --gpus"),
        (["--num_policies", "2", "--gpus", "0,1", "--", "--device=cuda:1"],
         "--device: with --gpus every member sees only its own GPU, as cuda:0; drop --device=cuda:1"),
        (["--num_policies", "2", "--", "agent.pbt.policy_idx=1"], "do not pass agent.pbt.policy_idx"),
        (["--num_policies", "2", "--", "agent.pbt.directory={file}/sub"], "agent.pbt.directory: workspace folder"),
    ],
)
def test_bad_input_fails_before_anything_starts(tmp_path, args, message):
    (tmp_path / "file").write_text("")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    result = _launch(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["file"]  # nothing created, nothing started


def test_dry_run_prints_each_member_command_and_environment(tmp_path):
    out = _launch("--num_policies", "4", "--gpus", "0,1", "--python", "./isaaclab.sh -p", "--tag", "t", "--dry-run", "--",
                  "--task=Isaac-Dexsuite-Kuka-Allegro-Lift-v0", "--num_envs=8192", "--seed=10", "--track",
                  f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    commands = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 4
    for n, line in enumerate(commands):
        assert line.startswith(f"CUDA_VISIBLE_DEVICES={n % 2} ./isaaclab.sh -p {ROOT}/scripts/train.py ")
        for token in (f"agent.pbt.policy_idx={n}", "agent.pbt.num_policies=4", f"--seed={10 + n}", f"--wandb-name=idx{n}",
                      "--headless", "--num_envs=8192", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
                      f"+agent.params.config.full_experiment_name=t_pbt{n:03d}", "--device=cuda:0"):
            assert f" {token}" in line, (token, line)
    assert os.listdir(tmp_path) == []
    packed = plan_workers(4, [], "train.py", ["python"], gpus=["0", "1"], per_gpu=2)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in packed] == ["0", "0", "1", "1"]
    # the member trains on the GPU it was given (it sees it as cuda:0); CPU populations stay on the CPU
    assert all("--device=cuda:0" in s.args for s in packed)
    assert not any(a.startswith("--device") for s in plan_workers(2, [], "train.py", ["python"]) for a in s.args)
    assert all("--device=cuda:0" in s.args for s in plan_workers(2, [], "train.py", ["python"], on_gpu=True))
    assert all("--device=cpu" in s.args for s in plan_workers(2, ["--device=cpu"], "train.py", ["python"], on_gpu=True))


def test_slurm_dry_run_prints_an_array_job(tmp_path):
    out = _launch("--num_policies", "8", "--backend", "slurm", "--gpus_per_member", "1", "--tag", "lift", "--dry-run", "--",
                  "--task=Isaac-Dexsuite-Kuka-Allegro-Lift-v0", "agent.pbt.directory=/shared/pbt")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for line in ("#SBATCH --array=0-7", "#SBATCH --gres=gpu:1", "#SBATCH --requeue", "--members $SLURM_ARRAY_TASK_ID",
                 "--num_policies 8", "-- --task=Isaac-Dexsuite-Kuka-Allegro-Lift-v0 agent.pbt.directory=/shared/pbt"):
        assert line in text, line
    proc = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_resume_uses_the_newest_checkpoint_and_its_hyperparameters(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    [spec] = plan_workers(2, ["--seed=3", "agent.params.config.learning_rate=1e-8", f"agent.pbt.directory={tmp_path}",
                              "agent.pbt.workspace=ws"], "train.py", ["python"], members=[1])
    assert resume_argv(spec, ws) == spec.argv  # nothing published yet: start over
    for it in (1, 2, 3):
        ws.publish(Record(1, it, it * 100, 0.5, {"agent.params.config.learning_rate": 1e-3 * it}),
                   lambda f: torch.save({"model": {"w": torch.ones(3)}}, f))
    with open(ws.weights_path(1, 3), "r+b") as f:  # the newest was cut short by a kill or a full disk
        f.truncate(20)
    argv = resume_argv(spec, ws)
    assert f"--checkpoint={ws.weights_path(1, 2)}" in argv and "agent.params.config.learning_rate=0.002" in argv
    assert "agent.params.config.learning_rate=1e-08" not in " ".join(argv) and argv[:2] == ["python", "train.py"]


def _records(ws, idx):
    return [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]


def _wait(predicate, timeout=120.0, busy=False):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if not busy:
            time.sleep(0.05)
    raise AssertionError("timed out")


def _tmp_file(folder):
    try:
        return any(name.endswith(".tmp") for name in os.listdir(folder))
    except FileNotFoundError:
        return False


def test_killed_member_comes_back_from_its_checkpoint_and_the_population_finishes(tmp_path):
    launcher = subprocess.Popen(
        [sys.executable, LAUNCH, "--num_policies", "3", "--tag", "t", "--backoff", "0.2", "--", "--num_envs=64",
         "--max_iterations=60", BIG_NET, f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
         "agent.pbt.interval_steps=4096", "agent.pbt.keep_checkpoints=100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(), cwd=tmp_path)
    ws = Workspace(str(tmp_path / "ws"))
    folder = ws.member_dir(1)
    # 1) mid-run, between two checkpoints
    first = _wait(lambda: len(_records(ws, 1)) >= 2 and _records(ws, 1)[-1])
    os.kill(first.pid, signal.SIGKILL)
    # 2) once it is back, while it writes a checkpoint
    second = _wait(lambda: next((r for r in _records(ws, 1) if r.pid != first.pid), None))
    _wait(lambda: _tmp_file(folder), busy=True)
    os.kill(second.pid, signal.SIGKILL)
    out, _ = launcher.communicate(timeout=400)
    assert launcher.returncode == 0, out

    assert "member 001: finished (exit codes -9, -9, 0; 2 crash restart(s))" in out
    records = _records(ws, 1)
    pids = list(dict.fromkeys(r.pid for r in records))
    assert len(pids) == 3 and pids[:2] == [first.pid, second.pid]
    for pid in pids[1:]:  # each comeback continued after the last checkpoint, not from frame 0
        before = max(r.iteration for r in records if pids.index(r.pid) < pids.index(pid))
        assert min(r.iteration for r in records if r.pid == pid) == before + 1
    assert [r.iteration for r in records] == list(range(1, 16)) and records[-1].frame == 60 * 1024
    log = (tmp_path / "logs" / "launch" / "t" / "member001.log").read_text()
    assert log.count("[launcher] start:") == 3 and log.count(f"--checkpoint={folder}") == 2
    for n in range(3):
        member_log = (tmp_path / "logs" / "launch" / "t" / f"member{n:03d}.log").read_text()
        assert "PBT workspace: skipping" not in member_log  # no partial record was ever read
    assert not _tmp_file(folder)  # the cut write's temporary file was cleaned up
    assert all(len(ws.iterations(n)) == 15 for n in range(3))


def test_a_pbt_restart_is_not_a_crash(tmp_path):
    # Member 1 trains to the end first, so member 0 always meets a stronger record when it ranks:
    # with thresholds of 0 it underperforms and re-executes itself (run together, either may run
    # ahead in time and see only the other's older, weaker record, so no one might ever act).
    def launch(member: str):
        return subprocess.run(
            [sys.executable, LAUNCH, "--num_policies", "2", "--members", member, "--tag", "t", "--", "--num_envs=64",
             "--max_iterations=24", f"agent.pbt.directory={tmp_path}", "agent.pbt.interval_steps=4096",
             "agent.pbt.apply=restart", "agent.pbt.burn_in_steps=8192", "agent.pbt.threshold_std=0",
             "agent.pbt.threshold_abs=0"],
            capture_output=True, text=True, env=child_env(), cwd=tmp_path, timeout=400)

    for member in ("1", "0"):
        out = launch(member)
        assert out.returncode == 0, out.stdout[-3000:]
        assert f"member {int(member):03d}: finished (exit codes 0; 0 crash restart(s))" in out.stdout
    ws = Workspace(str(tmp_path / "pbt_workspace"))
    assert [e["donor"] for e in ws.lineage(0) if e.get("applied") == "restart"][:1] == [1]
    log = (tmp_path / "logs" / "launch" / "t" / "member000.log").read_text()
    assert log.count("[launcher] start:") == 1  # the re-exec happened inside the member, not through the launcher


def test_sigterm_to_the_launcher_leaves_no_member_alive(tmp_path):
    launcher = subprocess.Popen(
        [sys.executable, LAUNCH, "--num_policies", "2", "--", "--num_envs=64", "--max_iterations=100000",
         f"agent.pbt.directory={tmp_path}", "agent.pbt.interval_steps=2048"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(), cwd=tmp_path)
    ws = Workspace(str(tmp_path / "pbt_workspace"))
    pids = _wait(lambda: all(ws.latest(i) for i in range(2)) and [ws.latest(i).pid for i in range(2)])
    launcher.send_signal(signal.SIGTERM)
    out, _ = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + signal.SIGTERM, out
    assert "member 000: stopped" in out and "member 001: stopped" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ray_backend_survives_a_killed_member(tmp_path):
    pytest.importorskip("ray")
    launcher = subprocess.Popen(
        [sys.executable, LAUNCH, "--num_policies", "2", "--backend", "ray", "--tag", "r", "--", "--num_envs=64",
         "--max_iterations=40", f"agent.pbt.directory={tmp_path}", "agent.pbt.interval_steps=4096",
         "agent.pbt.keep_checkpoints=100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(), cwd=tmp_path)
    ws = Workspace(str(tmp_path / "pbt_workspace"))
    victim = _wait(lambda: len(_records(ws, 0)) >= 2 and _records(ws, 0)[-1], timeout=240)
    os.kill(victim.pid, signal.SIGKILL)
    out, _ = launcher.communicate(timeout=400)
    assert launcher.returncode == 0, out
    assert "member 000: finished" in out and "member 001: finished" in out
    records = _records(ws, 0)
    assert len({r.pid for r in records}) == 2 and [r.iteration for r in records] == list(range(1, 11))
    log = (tmp_path / "logs" / "launch" / "r" / "member000.log").read_text()
    assert log.count("[ray] start") == 2 and log.count(f"--checkpoint={ws.member_dir(0)}") == 1


@pytest.mark.parametrize("library", ["rsl_rl", "skrl"])
def test_the_launcher_trains_a_population_of_another_library(tmp_path, library):
    pytest.importorskip(library)
    out = _launch("--num_policies", "2", "--library", library, "--tag", "lib", "--", "--num_envs=32", "--max_iterations=8",
                  f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=2048",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ws = Workspace(str(tmp_path / "ws"))
    assert all(ws.latest(i) is not None and ws.latest(i).library == library for i in range(2))
    # by member index: the two date prefixes may straddle a second
    runs = sorted((p.name for p in (tmp_path / "logs" / library).glob("*/*") if p.is_dir()), key=lambda name: name[-3:])
    assert len(runs) == 2 and all(name.endswith(f"_lib_pbt{i:03d}") for i, name in enumerate(runs)), runs
