"""scripts/play.py: evaluating the workspace's best member (or a checkpoint) as a table, and refusing what is unsafe."""

import subprocess
import sys

import pytest

from isaaclab_pbt.core.workspace import Workspace

from .conftest import ROOT, child_env, plant_pickle

PLAY = str(ROOT / "scripts" / "play.py")
TRAIN = str(ROOT / "scripts" / "train.py")


def _run(cwd, script, *args, timeout=300):
    return subprocess.run([sys.executable, script, *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-member population of the embedded task that published a best member."""
    folder = tmp_path_factory.mktemp("play")
    out = _run(folder, TRAIN, "--headless", "--max_iterations=6", "--num_envs=32", "agent.params.config.minibatch_size=256",
               "agent.pbt.enabled=True", "agent.pbt.num_policies=1", "agent.pbt.min_initialized=1", f"agent.pbt.directory={folder}",
               "agent.pbt.workspace=ws", "agent.pbt.interval_steps=1024")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return folder


def test_play_evaluates_the_best_member_by_default(trained):
    record, _ = Workspace(str(trained / "ws")).best()
    out = _run(trained, PLAY, "--episodes=40", f"agent.pbt.directory={trained}", "agent.pbt.workspace=ws")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert f"member {record.policy_idx:03d}, iteration {record.iteration}" in text
    assert "episode.Episode_Reward/success" in text and "objective (episode.Curriculum/adr)" in text
    episodes = int(text.split("│ episodes")[1].split("│")[1].split()[0])
    assert episodes >= 40
    assert "loading checkpoint" in out.stdout + out.stderr and "restore_" in out.stdout + out.stderr  # a safe copy


def test_play_takes_a_checkpoint_and_refuses_one_that_would_run_code(trained, tmp_path):
    record, best = Workspace(str(trained / "ws")).best()
    out = _run(trained, PLAY, "--episodes=8", f"--checkpoint={best}")
    assert out.returncode == 0 and "Evaluation of" in out.stdout, out.stderr[-3000:]

    marker, hostile = tmp_path / "pwned", tmp_path / "hostile.pth"
    plant_pickle(hostile, marker)
    out = _run(trained, PLAY, "--episodes=8", f"--checkpoint={hostile}")
    assert out.returncode == 2 and not marker.exists()
    assert out.stderr.strip().splitlines()[-1].startswith(f"play: error: --checkpoint: cannot load {hostile} safely")


def test_play_without_a_best_member_or_with_video_on_the_embedded_task_is_one_line(tmp_path):
    out = _run(tmp_path, PLAY, f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=empty")
    assert out.returncode == 2 and "has no best member yet" in out.stderr.strip().splitlines()[-1]
    out = _run(tmp_path, PLAY, "--video", "--checkpoint=x.pth")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("play: error: --video: the embedded task")
