"""scripts/play.py on Isaac Lab 3.0's Isaac-Cartpole: the workspace's best member, evaluated in the real env."""

import subprocess
import sys

from isaaclab_pbt.core.workspace import Workspace

from ..conftest import ROOT


def test_play_evaluates_a_cartpole_population_s_best_member(tmp_path, il_env):
    common = ["--task=Isaac-Cartpole", "--num_envs=16", "--headless", "--device=cpu"]
    train = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *common, "--max_iterations=4",
                            "agent.params.config.minibatch_size=256", "agent.pbt.enabled=True", "agent.pbt.num_policies=1",
                            "agent.pbt.min_initialized=1", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
                            "agent.pbt.interval_steps=512", "agent.pbt.objective=episode.Episode_Reward/alive"],
                           cwd=tmp_path, env=il_env, capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    record, _ = Workspace(str(tmp_path / "ws")).best()
    play = subprocess.run([sys.executable, str(ROOT / "scripts" / "play.py"), *common, "--episodes=16",
                           f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
                           "agent.pbt.objective=episode.Episode_Reward/alive"],
                          cwd=tmp_path, env=il_env, capture_output=True, text=True, timeout=900)
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    assert f"member {record.policy_idx:03d}, iteration {record.iteration}" in play.stdout
    assert "objective (episode.Episode_Reward/alive)" in play.stdout and "episode.Episode_Reward/" in play.stdout
