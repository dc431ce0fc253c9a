"""``agent.pbt.mode=batched``: the members' rsl_rl networks stacked into one PPO, each lane equal to rsl_rl's own PPO.

The equality test feeds the same rollout to the batched PPO and to one real rsl_rl ``PPO`` per lane
and compares the values, the losses and, after the update, every weight, normaliser and Adam
moment. It runs in float64 so that the two orders of the same arithmetic agree closely; what is
left (about 1e-8) is rsl_rl's own float32 ``dones.float()`` in its GAE, which rounds ``gamma``.
"""

from __future__ import annotations

import copy
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rsl_rl")

from tensordict import TensorDict  # noqa: E402

from isaaclab_pbt.core import agent_config  # noqa: E402
from isaaclab_pbt.core.errors import UsageError  # noqa: E402
from isaaclab_pbt.core.workspace import Workspace  # noqa: E402
from isaaclab_pbt.rsl_rl.batched import build_ppo, observation_group, train_batched  # noqa: E402
from isaaclab_pbt.rsl_rl.train import AGENTS, configure  # noqa: E402

ENVS, STEPS, OBS, ACTIONS = 8, 4, 5, 2


def _lane_configs(schedule: str) -> list[dict]:
    """Two members of the shipped PointReach config, different in every per-lane value, one batch per epoch.

    Lane 0 stops after 2 epochs while lane 1 does a third; from the second epoch on (the first
    measures a KL of 0) the adaptive schedule lowers lane 0's learning rate and raises lane 1's.
    """
    base = agent_config.load(AGENTS["PointReach-v0"], "algorithm", "rsl_rl")
    base["num_steps_per_env"] = STEPS
    base["algorithm"].update(num_mini_batches=1, schedule=schedule)
    lanes = [dict(learning_rate=3e-3, num_learning_epochs=2, entropy_coef=0.01, gamma=0.99, lam=0.95, clip_param=0.2,
                  value_loss_coef=1.0, max_grad_norm=1.0, desired_kl=1e-4),
             dict(learning_rate=1e-3, num_learning_epochs=3, entropy_coef=0.0, gamma=0.9, lam=0.8, clip_param=0.05,
                  value_loss_coef=0.5, max_grad_norm=0.05, desired_kl=10.0)]  # a tight gradient clip, a loose KL target
    cfgs = []
    for seed, values in enumerate(lanes):
        cfg = copy.deepcopy(base)
        cfg["seed"] = seed
        cfg["algorithm"].update(values)
        cfgs.append(cfg)
    return cfgs


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("schedule", ["fixed", "adaptive"])
def test_each_lane_of_an_update_is_rsl_rls_own_ppo(float64, schedule):
    from rsl_rl.runners import OnPolicyRunner

    from isaaclab_pbt.rsl_rl.env import EmbeddedVecEnv
    from isaaclab_pbt.rsl_rl.runner import train_cfg
    from isaaclab_pbt.tasks.point_reach import PointReachEnv

    cfgs = _lane_configs(schedule)
    ppo = build_ppo(cfgs, OBS, ACTIONS, ENVS, "cpu")
    runners = [OnPolicyRunner(EmbeddedVecEnv(PointReachEnv(ENVS)), train_cfg(copy.deepcopy(c)), log_dir=None, device="cpu")
               for c in cfgs]
    for i, runner in enumerate(runners):
        runner.alg.load(ppo.lane_state(i), None, True)  # the lane's weights and learning rate, through rsl_rl's loader
        assert runner.alg.learning_rate == cfgs[i]["algorithm"]["learning_rate"]
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(2, ENVS, OBS, generator=gen)
    for _ in range(STEPS):
        actions = ppo.act(obs)
        for i, runner in enumerate(runners):
            alg = runner.alg
            alg.act(TensorDict({"policy": obs[i]}, batch_size=[ENVS]))
            alg.transition.actions = actions[i].clone()  # the batched PPO's sample, so both learn from one rollout
            alg.transition.actions_log_prob = alg.actor.get_output_log_prob(actions[i]).detach()
            torch.testing.assert_close(alg.transition.values.squeeze(-1), ppo._transition["values"][i])
            torch.testing.assert_close(alg.transition.actions_log_prob, ppo._transition["log_prob"][i])
        rewards = torch.randn(2, ENVS, generator=gen)
        dones = torch.rand(2, ENVS, generator=gen) < 0.3
        time_outs = dones & (torch.rand(2, ENVS, generator=gen) < 0.5)
        ppo.process_env_step(rewards, dones, time_outs)
        obs = torch.randn(2, ENVS, OBS, generator=gen)
        for i, runner in enumerate(runners):
            runner.alg.process_env_step(TensorDict({"policy": obs[i]}, batch_size=[ENVS]), rewards[i].clone(), dones[i].long(),
                                        {"time_outs": time_outs[i]})
    ppo.compute_returns(obs)
    losses = ppo.update()
    for i, runner in enumerate(runners):
        runner.alg.compute_returns(TensorDict({"policy": obs[i]}, batch_size=[ENVS]))
        theirs = runner.alg.update()
        for name in ("value", "surrogate", "entropy"):
            assert float(losses[name][i]) == pytest.approx(theirs[name], rel=1e-6, abs=1e-9), name
        ours, saved = ppo.lane_state(i), runner.alg.save()
        for part in ("actor_state_dict", "critic_state_dict"):
            assert set(ours[part]) == set(saved[part])
            for key, tensor in saved[part].items():
                torch.testing.assert_close(ours[part][key], tensor, rtol=1e-6, atol=1e-9, msg=f"lane {i} {part}.{key}")
        optimizer = saved["optimizer_state_dict"]
        assert set(ours["optimizer_state_dict"]["state"]) == set(optimizer["state"])
        for index, entry in optimizer["state"].items():
            mine = ours["optimizer_state_dict"]["state"][index]
            assert float(mine["step"]) == float(entry["step"]) == cfgs[i]["algorithm"]["num_learning_epochs"]
            torch.testing.assert_close(mine["exp_avg"], entry["exp_avg"], rtol=1e-6, atol=1e-9)
            torch.testing.assert_close(mine["exp_avg_sq"], entry["exp_avg_sq"], rtol=1e-6, atol=1e-9)
        lr = ours["optimizer_state_dict"]["param_groups"][0]["lr"]
        assert lr == pytest.approx(optimizer["param_groups"][0]["lr"], rel=1e-12)
        if schedule == "adaptive":
            assert (lr < cfgs[i]["algorithm"]["learning_rate"]) if i == 0 else (lr > cfgs[i]["algorithm"]["learning_rate"])


def test_a_lanes_checkpoint_is_an_rsl_rl_checkpoint(tmp_path):
    """A batched member's ``model_<it>.pt`` and its published weights load with ``OnPolicyRunner.load``, and act the same."""
    from rsl_rl.runners import OnPolicyRunner

    from isaaclab_pbt.rsl_rl.env import EmbeddedVecEnv
    from isaaclab_pbt.rsl_rl.runner import train_cfg
    from isaaclab_pbt.tasks.point_reach import PointReachEnv

    args, agent_cfg, pbt = configure(["--task=PointReach-v0", "--num_envs=16", "--max_iterations=8", "--seed=0",
                                      "agent.pbt.enabled=True", "agent.pbt.mode=batched", "agent.pbt.num_policies=2",
                                      f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=1024"])
    learners = train_batched(args, agent_cfg, pbt, command=None)
    ppo = learners[1].runner.ppo
    obs = torch.randn(2, 16, OBS)
    expected = ppo.actor(obs)[1].detach()
    runner = OnPolicyRunner(EmbeddedVecEnv(PointReachEnv(16)), train_cfg(copy.deepcopy(agent_cfg)), log_dir=None, device="cpu")
    runner.load(os.path.join(learners[1].run_dir, "model_7.pt"))
    assert runner.current_learning_iteration == 8
    assert runner.alg.learning_rate == pytest.approx(float(ppo.hp["learning_rate"][1]))
    acted = runner.alg.get_policy()(TensorDict({"policy": obs[1]}, batch_size=[16]))  # rsl_rl's deterministic action
    torch.testing.assert_close(acted.detach(), expected, rtol=1e-5, atol=1e-6)
    ws = Workspace(str(tmp_path / "ws"))
    runner.load(ws.weights_path(1, ws.iterations(1)[-1]))
    torch.testing.assert_close(runner.alg.get_policy()(TensorDict({"policy": obs[1]}, batch_size=[16])).detach(), expected,
                               rtol=1e-5, atol=1e-6)


def _refusal(tmp_path, extra, configure_member=None) -> str:
    args, agent_cfg, pbt = configure(["--task=PointReach-v0", "--num_envs=16", "--max_iterations=2", "agent.pbt.enabled=True",
                                      "agent.pbt.mode=batched", "agent.pbt.num_policies=2", f"agent.pbt.directory={tmp_path}",
                                      "agent.pbt.workspace=ws", *extra])
    with pytest.raises(UsageError) as caught:
        train_batched(args, agent_cfg, pbt, command=None, configure_member=configure_member)
    assert not os.path.exists(tmp_path / "logs")  # refused before any run folder
    return str(caught.value)


def test_a_batch_split_whitelisted_is_refused(tmp_path):
    message = _refusal(tmp_path, ["+agent.pbt.mutation.agent.algorithm.num_mini_batches=mutate_int"])
    assert message.startswith("agent.pbt.mutation.agent.algorithm.num_mini_batches: ") and "mode=shared" in message


def test_members_of_other_shapes_are_refused(tmp_path):
    def wider(idx, cfg):
        if idx == 1:
            cfg["actor"]["hidden_dims"] = [64, 64]

    message = _refusal(tmp_path, [], wider)
    assert message.startswith("agent.actor.hidden_dims: member 001 differs from member 000")


def test_another_model_is_refused(tmp_path):
    message = _refusal(tmp_path, ["agent.actor.class_name=RNNModel"])
    assert message.startswith("agent.actor.class_name: agent.pbt.mode=batched trains MLPModel, got 'RNNModel'")


def test_actor_and_critic_must_read_one_and_the_same_group():
    groups = {"policy": torch.zeros(4, 3), "critic": torch.zeros(4, 5)}
    assert observation_group({"actor": ["policy"], "critic": ["policy"]}, groups) == "policy"
    assert observation_group({}, {"policy": torch.zeros(4, 3)}) == "policy"  # rsl_rl's defaults: both read policy
    with pytest.raises(UsageError) as err:  # Isaac Lab's asymmetric configs: a privileged critic group
        observation_group({"actor": ["policy"], "critic": ["critic"]}, groups)
    assert str(err.value).startswith("agent.obs_groups: agent.pbt.mode=batched feeds actor and critic one and the same "
                                     "observation group, got actor ['policy'] and critic ['critic']")
