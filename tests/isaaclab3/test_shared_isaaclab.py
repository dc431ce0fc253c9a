"""A one-process population (``agent.pbt.mode=shared`` and ``batched``) on Isaac Lab 3.0's Isaac-Cartpole, kit-less on the CPU."""

import gymnasium as gym
import pytest
import torch

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rl_games import checkpoint

from ..conftest import run_population


def test_each_block_logs_its_own_episode_rewards():
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import resolve_task_config

    from isaaclab_pbt.isaaclab.envs import BlockEpisodeLog

    env_cfg, _ = resolve_task_config("Isaac-Cartpole", "rl_games_cfg_entry_point", overrides=[])
    env_cfg.scene.num_envs, env_cfg.sim.device = 8, "cpu"
    with launch_simulation(env_cfg, {"device": "cpu"}):
        env = gym.make("Isaac-Cartpole", cfg=env_cfg)
        try:
            blocks = BlockEpisodeLog(env, 2)
            env.reset()
            for _ in range(5):
                env.step(torch.rand(8, 1) * 2 - 1)
            before = blocks.values.clone()
            env.unwrapped._reset_idx(torch.arange(4, 8))  # only block 1's envs end their episodes
            logged = env.unwrapped.extras["log"]  # Isaac Lab's own average over the envs that reset
            for i, name in enumerate(blocks.names):
                assert blocks.values[1, i].item() == torch.as_tensor(logged[f"Episode_Reward/{name}"]).item()
            assert torch.equal(blocks.values[0], before[0])  # block 0 had no episode end: its log stays
            assert blocks.values[1].abs().sum() > 0
        finally:
            env.close()


def test_each_block_logs_its_own_terminations_and_the_objective_must_be_such_a_log():
    from isaaclab.app import launch_simulation
    from isaaclab_tasks.utils import resolve_task_config

    from isaaclab_pbt.core.errors import UsageError
    from isaaclab_pbt.isaaclab.envs import BlockEpisodeLog

    env_cfg, _ = resolve_task_config("Isaac-Cartpole", "rl_games_cfg_entry_point", overrides=[])
    env_cfg.scene.num_envs, env_cfg.sim.device, env_cfg.episode_length_s = 8, "cpu", 0.1  # a time-out every 6 steps
    with launch_simulation(env_cfg, {"device": "cpu"}):
        env = gym.make("Isaac-Cartpole", cfg=env_cfg)
        try:
            blocks = BlockEpisodeLog(env, 2, "episode.Episode_Termination/time_out")
            env.reset()
            env.unwrapped.episode_length_buf[:4] = 3  # block 0's envs time out 3 steps before block 1's
            for _ in range(4):
                env.step(torch.zeros(8, 1))
            shares = blocks.log()["Episode_Termination/time_out"]
            assert shares.tolist() == [1.0, 0.0]  # block 0's last episodes timed out, block 1's have not ended
            manager = env.unwrapped.termination_manager
            assert manager.reset()["Episode_Termination/time_out"].item() == shares.mean().item()  # Isaac Lab's own, over all envs
            with pytest.raises(UsageError) as err:
                BlockEpisodeLog(env, 2, "episode.Curriculum/level")
            assert str(err.value).startswith("agent.pbt.objective: with the whole population in one env it must be one of "
                                             "the logs computed per block (episode.Episode_Reward/alive, ")
            assert "episode.Episode_Termination/time_out" in str(err.value)
        finally:
            env.close()


@pytest.mark.parametrize("mode", ["shared", "batched"])
def test_a_one_process_population_trains_and_replaces_on_isaac_lab_3(tmp_path, il_env, mode):
    args = ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=12", "--headless", "--device=cpu", "--seed=0",
            "agent.params.config.minibatch_size=256", "agent.pbt.enabled=True", f"agent.pbt.mode={mode}",
            "agent.pbt.num_policies=2", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
            "agent.pbt.interval_steps=512", "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0",
            "agent.pbt.objective=episode.Episode_Reward/alive", "agent.pbt.keep_checkpoints=100", "agent.pbt.burn_in_steps=1024"]
    run_population(tmp_path, [args], tmp_path / "ws", env=il_env, timeout=900)
    ws = Workspace(str(tmp_path / "ws"))
    assert ("one PPO update for all" in (tmp_path / "member0.log").read_text()) == (mode == "batched")
    records = {i: [ws.read_record(i, it) for it in ws.iterations(i)] for i in (0, 1)}
    assert all([r.iteration for r in records[i]] == list(range(1, 7)) for i in (0, 1))
    assert len({r.pid for rs in records.values() for r in rs}) == 1  # one process, one simulator
    assert records[0][-1].objective != records[1][-1].objective  # two learners, each scored on its own block
    events = [e for i in (0, 1) for e in ws.lineage(i) if e["event"] == "replaced"]
    assert events, (tmp_path / "member0.log").read_text()[-4000:]
    entry = events[0]
    assert entry["applied"] == "in-place"
    donor = torch.load(ws.weights_path(entry["donor"], entry["donor_iteration"]), weights_only=True)
    assert entry["weights_sha256"] == checkpoint.model_digest(donor["model"])  # taken from memory: what the donor published
    runs = sorted((tmp_path / "logs" / "rl_games" / "cartpole").iterdir())
    assert [p.name[-6:] for p in runs] == ["pbt000", "pbt001"]
    assert all(list((p / "nn").glob("last_cartpole_ep_12_*.pth")) for p in runs)  # rl_games' name for the last checkpoint


@pytest.mark.parametrize("mode", ["shared", "batched"])
def test_an_rsl_rl_population_in_one_process_on_isaac_lab_3(tmp_path, il_env, mode):
    from isaaclab_pbt.rsl_rl.learner import RslRlLearner

    from ..conftest import ROOT

    # Isaac Lab's own CartpolePPORunnerCfg and rsl_rl wrapper; 1 s episodes, so the pole's episode
    # penalty is logged per block from the second interval on
    args = ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=16", "--headless", "--device=cpu", "--seed=0",
            "env.episode_length_s=1", "agent.pbt.enabled=True", f"agent.pbt.mode={mode}", "agent.pbt.num_policies=2",
            f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=512",
            "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0", "agent.pbt.objective=episode.Episode_Reward/pole_pos",
            "agent.pbt.keep_checkpoints=100", "agent.pbt.burn_in_steps=1024"]
    run_population(tmp_path, [args], tmp_path / "ws", env=il_env, timeout=900, script=str(ROOT / "scripts" / "rsl_rl" / "train.py"))
    ws = Workspace(str(tmp_path / "ws"))
    assert ("one PPO update for all" in (tmp_path / "member0.log").read_text()) == (mode == "batched")
    records = {i: [ws.read_record(i, it) for it in ws.iterations(i)] for i in (0, 1)}
    assert all([r.iteration for r in records[i]] == list(range(1, 9)) for i in (0, 1))
    assert {r.library for rs in records.values() for r in rs} == {"rsl_rl"}
    assert len({r.pid for rs in records.values() for r in rs}) == 1  # one process, one simulator
    assert records[0][-1].objective != records[1][-1].objective  # each scored on its own block
    events = [e for i in (0, 1) for e in ws.lineage(i) if e["event"] == "replaced"]
    assert events, (tmp_path / "member0.log").read_text()[-4000:]
    entry = events[0]
    assert entry["applied"] == "in-place"
    donor = torch.load(ws.weights_path(entry["donor"], entry["donor_iteration"]), map_location="cpu", weights_only=True)
    assert entry["weights_sha256"] == RslRlLearner.digest(None, donor)  # taken from memory: what the donor published
    runs = sorted((tmp_path / "logs" / "rsl_rl" / "cartpole").iterdir())
    assert [p.name[-6:] for p in runs] == ["pbt000", "pbt001"]
    assert all((p / "model_15.pt").is_file() for p in runs)  # rsl_rl's name for the last checkpoint


def test_an_skrl_population_in_one_process_on_isaac_lab_3(tmp_path, il_env):
    from isaaclab_pbt.skrl.learner import SkrlLearner

    from ..conftest import ROOT

    # Isaac Lab's own skrl Cartpole config and skrl's wrapper, with a fixed learning rate (so PBT
    # mutates the learning rate itself); 1 s episodes, as above
    args = ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=16", "--headless", "--device=cpu", "--seed=0",
            "env.episode_length_s=1", "agent.agent.learning_rate_scheduler=null", "agent.pbt.enabled=True",
            "agent.pbt.mode=shared", "agent.pbt.num_policies=2", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
            "agent.pbt.interval_steps=512", "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0",
            "agent.pbt.objective=episode.Episode_Reward/pole_pos", "agent.pbt.keep_checkpoints=100", "agent.pbt.burn_in_steps=1024"]
    run_population(tmp_path, [args], tmp_path / "ws", env=il_env, timeout=900, script=str(ROOT / "scripts" / "skrl" / "train.py"))
    ws = Workspace(str(tmp_path / "ws"))
    assert "one-process population: 2 members x 16 envs of Isaac-Cartpole" in (tmp_path / "member0.log").read_text()
    records = {i: [ws.read_record(i, it) for it in ws.iterations(i)] for i in (0, 1)}
    assert all([r.iteration for r in records[i]] == list(range(1, 9)) for i in (0, 1))
    assert {r.library for rs in records.values() for r in rs} == {"skrl"}
    assert len({r.pid for rs in records.values() for r in rs}) == 1  # one process, one simulator
    assert records[0][-1].objective != records[1][-1].objective  # each scored on its own block
    events = [e for i in (0, 1) for e in ws.lineage(i) if e["event"] == "replaced"]
    assert events, (tmp_path / "member0.log").read_text()[-4000:]
    entry = events[0]
    assert entry["applied"] == "in-place"
    donor = torch.load(ws.weights_path(entry["donor"], entry["donor_iteration"]), map_location="cpu", weights_only=True)
    assert entry["weights_sha256"] == SkrlLearner.digest(None, donor)  # taken from memory: what the donor published
    runs = sorted(p.name[-6:] for p in (tmp_path / "logs" / "skrl" / "cartpole").iterdir())
    assert runs == ["pbt000", "pbt001"]
