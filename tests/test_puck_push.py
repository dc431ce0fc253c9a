import subprocess
import sys

import pytest
import torch

from isaaclab_pbt.tasks import EMBEDDED_TASKS, PUCK_PUSH_TASK
from isaaclab_pbt.tasks.puck_push import DEFAULT_REWARD_WEIGHTS, PuckPushEnv

from .conftest import TRAIN, child_env

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


def test_success_levels_up_and_timeout_levels_down():
    env = PuckPushEnv(2, seed=0, max_level=10, max_episode_steps=3)
    env.level[:] = 4
    env.reset()
    env.goal[0] = env.puck[0]  # env 0's puck rests on its goal: success on the first step
    env.goal[1] = env.puck[1] + torch.tensor([100.0, 0.0])  # env 1 cannot make it: timeout
    _, reward, done, infos = env.step(torch.zeros(2, 2))
    assert done.tolist() == [True, False] and env.level.tolist() == [5, 4] and reward[0] > 5
    for _ in range(2):
        _, _, done, infos = env.step(torch.zeros(2, 2))
    assert done[1] and infos["time_outs"][1] and env.level[1] == 3
    episode = infos["episode"]
    assert set(episode) == {"Curriculum/adr", "Metrics/success_rate", *(f"Episode_Reward/{t}" for t in DEFAULT_REWARD_WEIGHTS)}
    assert isinstance(episode["Curriculum/adr"], float) and 0.0 <= episode["Curriculum/adr"] <= 1.0
    assert all(v.dim() == 0 for k, v in episode.items() if k != "Curriculum/adr")


def test_harder_levels_are_farther_wider_and_tighter():
    env = PuckPushEnv(256, seed=0, max_level=10)
    env.level[:128] = 0
    env.level[128:] = 10
    env.reset()
    distance = (env.goal - env.puck).norm(dim=1)
    cos_turn = torch.nn.functional.cosine_similarity(env.goal - env.puck, env.puck - env.finger, dim=1)
    assert distance[:128].max() < distance[128:].min()
    assert env.tolerance[:128].min() > env.tolerance[128:].max()
    assert cos_turn[:128].min() > 0.999 and cos_turn[128:].min() < -0.9  # level 0 pushes straight on, the top anywhere


def test_contact_pushes_the_puck_which_then_slides_to_rest():
    env = PuckPushEnv(1, seed=0)
    env.reset()
    env.finger[:] = 0.0
    env.puck[:] = torch.tensor([0.2, 0.0])
    env.goal[:] = torch.tensor([5.0, 0.0])
    env.step(torch.tensor([[1.0, 0.0]]))  # the finger overlaps the puck and drives it along +x
    assert env.puck[0, 0] > 0.2 and env.puck_vel[0, 0] == pytest.approx(env.max_speed) and env.puck[0, 1] == 0
    for _ in range(10):
        env.step(torch.tensor([[-1.0, 0.0]]))  # the finger backs off; friction stops the puck
    slide = env.max_speed**2 / (2 * env.friction)  # Coulomb friction: v^2 / (2 mu), less one step's discretisation
    assert env.puck_vel.norm() == 0 and 0.25 + 0.5 * slide < env.puck[0, 0] <= 0.25 + slide + 1e-6


def test_reward_weights_change_the_reward_live():
    a = PuckPushEnv(16, seed=5, rewards={"push": {"weight": 2.0}})
    b = PuckPushEnv(16, seed=5, rewards={"push": {"weight": 2.0}})
    assert a.reward_weights == {**DEFAULT_REWARD_WEIGHTS, "push": 2.0}
    a.reset(), b.reset()
    b.set_reward_weight("action_l2", -1.0)
    actions = torch.full((16, 2), 0.5)
    _, ra, _, _ = a.step(actions)
    _, rb, _, infos = b.step(actions)
    assert torch.allclose(ra - rb, torch.full((16,), (1.0 - 0.01) * 0.5))
    assert infos["episode"]["Episode_Reward/action_l2"].item() == pytest.approx(-0.5)
    with pytest.raises(KeyError, match="'speed'.*reach, push, success, action_l2"):
        b.set_reward_weight("speed", 1.0)
    with pytest.raises(KeyError, match="speed"):
        PuckPushEnv(1, rewards={"speed": {"weight": 1.0}})


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_rollouts_repeat_on_the_device(device):
    def rollout(seed):
        env = PuckPushEnv(32, device=device, seed=seed, max_level=4)
        gen = torch.Generator(device=device).manual_seed(0)
        obs = [env.reset()]
        for _ in range(80):
            o, r, d, _ = env.step(2 * torch.rand(32, 2, generator=gen, device=device) - 1)
            obs += [o, r.unsqueeze(1), d.unsqueeze(1).float()]
        assert o.device.type == device and env.level.device.type == device
        return torch.cat(obs, dim=1)

    assert torch.equal(rollout(7), rollout(7))
    assert not torch.equal(rollout(7), rollout(8))


def test_short_training_runs(tmp_path):
    assert EMBEDDED_TASKS[PUCK_PUSH_TASK].endswith("puck_push_ppo.yaml")
    proc = subprocess.run([sys.executable, TRAIN, f"--task={PUCK_PUSH_TASK}", "--max_iterations=2"], cwd=tmp_path,
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list((tmp_path / "logs" / "rl_games" / "puck_push").glob("*/summaries"))
