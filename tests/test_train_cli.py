"""scripts/train.py as a user runs it: logs layout, resuming, and checkpoints it refuses to trust."""

import glob
import subprocess
import sys

import yaml

from isaaclab_pbt.core.errors import UsageError

from .conftest import TRAIN, child_env, plant_pickle


def _train(cwd, *args):
    return subprocess.run([sys.executable, TRAIN, *args], cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=180)


def test_logs_follow_isaac_lab_layout_and_a_checkpoint_written_by_rl_games_resumes(tmp_path):
    first = _train(tmp_path, "--num_envs=32", "--max_iterations=3", "agent.params.config.minibatch_size=256",
                   "+agent.params.config.full_experiment_name=first")
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "logs" / "rl_games" / "point_reach" / "first"
    for name in ("agent.yaml", "env.yaml", "command.yaml"):
        assert (run / "params" / name).exists()
    [saved] = glob.glob(str(run / "nn" / "last_*.pth"))  # rl_games' own file, with numpy scalars inside
    again = _train(tmp_path, "--num_envs=32", "--max_iterations=5", f"--checkpoint={saved}",
                   "agent.params.config.minibatch_size=256", "+agent.params.config.full_experiment_name=second")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "epoch: 4/5" in again.stdout and "epoch: 1/5" not in again.stdout  # continued after epoch 3


def test_a_checkpoint_with_code_in_it_is_refused_before_rl_games_sees_it(tmp_path):
    plant_pickle(tmp_path / "evil.pth", tmp_path / "pwned")
    result = _train(tmp_path, "--max_iterations=1", "--checkpoint=evil.pth")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("train: error: --checkpoint: cannot load evil.pth safely")
    assert not (tmp_path / "pwned").exists()


def test_pbt_member_logs_under_its_directory(tmp_path):
    result = _train(tmp_path, "--num_envs=32", "--max_iterations=1", "agent.params.config.minibatch_size=256",
                    "agent.pbt.enabled=True", "agent.pbt.num_policies=2", "agent.pbt.policy_idx=1", "agent.pbt.directory=shared")
    assert result.returncode == 0, result.stderr[-2000:]
    [run] = (tmp_path / "shared" / "logs" / "rl_games" / "point_reach").iterdir()
    assert run.name.endswith("_pbt001")
    assert yaml.safe_load((run / "params" / "agent.yaml").read_text())["pbt"]["policy_idx"] == 1


def test_isaac_lab_train_flags_are_accepted_and_refused_with_one_line_where_they_cannot_work(tmp_path):
    cases = {
        ("--distributed", "agent.pbt.enabled=True"): "--distributed: a PBT member is one process on one device",
        ("--video",): "--video: only Isaac Lab tasks support it",
        ("--export_io_descriptors",): "--export_io_descriptors: only Isaac Lab tasks support it",
        ("--sigma=wide",): "--sigma: must be a number (the policy's initial standard deviation), got 'wide'",
    }
    for args, message in cases.items():
        result = _train(tmp_path, "--max_iterations=1", *args)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("train: error: " + message), (args, result.stderr[-500:])
    assert not (tmp_path / "logs").exists()  # refused before a run folder was made


def test_sigma_sets_the_initial_standard_deviation(tmp_path):
    result = _train(tmp_path, "--num_envs=32", "--max_iterations=1", "--sigma=0.25", "agent.params.config.minibatch_size=256",
                    "+agent.params.config.full_experiment_name=sigma", "agent.params.config.save_frequency=1")
    assert result.returncode == 0, result.stderr[-2000:]
    from isaaclab_pbt.rl_games import checkpoint

    [saved] = glob.glob(str(tmp_path / "logs" / "rl_games" / "point_reach" / "sigma" / "nn" / "*.pth"))[:1]
    sigma = checkpoint.load(saved)["model"]["a2c_network.sigma"]
    # rl_games fills the sigma parameter with the value (the config starts it at 0); one epoch moves it a little
    assert (sigma - 0.25).abs().max() < 0.03


def test_the_minibatch_follows_the_env_count_unless_the_user_sets_it():
    import pytest

    from isaaclab_pbt.rl_games.train import configure, parse_args

    def minibatch(*argv):
        args, ov = parse_args(list(argv))
        return configure(args, ov)[0]["params"]["config"]["minibatch_size"]

    assert minibatch() == 1024  # the shipped config: 128 envs x 16 steps in 2 minibatches
    assert minibatch("--num_envs=4096") == 32768  # still 2 minibatches, GPU-sized
    assert minibatch("--num_envs=4096", "agent.params.config.minibatch_size=8192") == 8192
    with pytest.raises(UsageError, match=r"^agent\.params\.config\.minibatch_size: 3000 does not divide the batch of 64 envs "
                                         r"x 16 steps = 1024; use a divisor such as 1024, 512, 256, 128$"):
        minibatch("--num_envs=64", "agent.params.config.minibatch_size=3000")
