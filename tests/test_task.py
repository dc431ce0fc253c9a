import pytest
import torch

from isaaclab_pbt.tasks.point_reach import PointReachEnv
from isaaclab_pbt.tasks.puck_push import PuckPushEnv


def test_success_levels_up_and_timeout_levels_down():
    env = PointReachEnv(2, seed=0, max_level=10, max_episode_steps=3)
    env.reset()
    env.level[:] = torch.tensor([4, 4])
    env.goal[0] = env.pos[0]  # env 0 starts on its goal at rest: success on the first step
    env.goal[1] = torch.tensor([100.0, 0.0])  # env 1 cannot make it: timeout
    _, reward, done, infos = env.step(torch.zeros(2, 2))
    assert done.tolist() == [True, False] and env.level.tolist() == [5, 4] and reward[0] > 5
    for _ in range(2):
        env.goal[1] = env.pos[1] + torch.tensor([100.0, 0.0])
        _, _, done, infos = env.step(torch.zeros(2, 2))
    assert done[1] and infos["time_outs"][1] and env.level[1] == 3
    assert set(infos["episode"]) == {"Curriculum/adr", "Episode_Reward/success"}
    assert isinstance(infos["episode"]["Curriculum/adr"], float) and infos["episode"]["Episode_Reward/success"].dim() == 0


@pytest.mark.parametrize("Env", [PointReachEnv, PuckPushEnv])
def test_curriculum_state_round_trips_and_adapts_to_env_count(Env):
    a = Env(8, seed=1)
    a.level = torch.arange(8)
    state = a.get_env_state()
    b = Env(8, seed=2)
    b.set_env_state(state)
    assert torch.equal(b.level, a.level)
    c = Env(32, seed=3)
    c.set_env_state(state)
    assert set(c.level.tolist()) <= set(range(8)) and c.level.numel() == 32
    c.set_env_state(None)  # rl_games passes None for checkpoints without env state
    assert c.level.numel() == 32


def test_harder_levels_put_the_goal_further_away():
    env = PointReachEnv(64, seed=0, max_level=10)
    env.level[:32] = 0
    env.level[32:] = 10
    env.reset()
    d = env.goal.norm(dim=1)
    assert d[:32].max() < d[32:].min()
