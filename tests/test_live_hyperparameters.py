"""Hyperparameters set by PBT must be the ones the running rl_games agent trains with."""

import pytest

from isaaclab_pbt.rl_games import learner as live

P = "agent.params.config."
NEW = {P + "learning_rate": 1.234e-3, P + "entropy_coef": 0.02, P + "critic_coef": 1.5, P + "bounds_loss_coef": 0.003,
       P + "grad_norm": 0.7, P + "e_clip": 0.12, P + "gamma": 0.97, P + "tau": 0.9, P + "kl_threshold": 0.02, P + "mini_epochs": 2}


def test_every_live_key_is_read_back_from_the_agent_and_used_in_training(agent_factory):
    agent, _ = agent_factory()
    live.write(agent, NEW)
    for key, value in NEW.items():
        assert live.read(agent, key, None) == pytest.approx(value), key
        assert agent.config[key[len(P):]] == pytest.approx(value)
    assert all(g["lr"] == pytest.approx(1.234e-3) for g in agent.optimizer.param_groups)
    agent.init_tensors()
    agent.obs = agent.env_reset()
    kls = agent.train_epoch()[8]
    assert len(kls) == 2  # one KL per mini-epoch: the new mini_epochs count drove the update
    assert agent.last_lr == pytest.approx(1.234e-3) and agent.optimizer.param_groups[0]["lr"] == pytest.approx(1.234e-3)


def test_adaptive_schedule_reads_the_new_kl_threshold_and_lr(agent_factory):
    agent, _ = agent_factory("agent.params.config.lr_schedule=adaptive")
    live.write(agent, {P + "kl_threshold": 0.05, P + "learning_rate": 5e-4})
    assert agent.scheduler.kl_threshold == 0.05 and agent.kl_threshold == 0.05
    lr, _ = agent.scheduler.update(agent.last_lr, agent.entropy_coef, 0, 0, kl_dist=0.05)
    assert lr == pytest.approx(5e-4)  # within [0.5, 2] x threshold: the schedule keeps the new lr


def test_linear_schedule_decays_from_the_new_start(agent_factory):
    agent, _ = agent_factory("agent.params.config.lr_schedule=linear", "+agent.params.config.schedule_entropy=True")
    live.write(agent, {P + "learning_rate": 2e-3, P + "entropy_coef": 0.01})
    lr, ent = agent.scheduler.update(agent.last_lr, agent.entropy_coef, 0, 0, kl_dist=0.0)
    assert lr == pytest.approx(2e-3) and ent == pytest.approx(0.01)


def test_restart_only_keys_are_not_live():
    assert live.is_live(P + "gamma") and not live.is_live(P + "horizon_length")
    assert not live.is_live("agent.params.network.mlp.units")


def test_reward_weights_change_in_the_running_env(agent_factory):
    key = "env.rewards.push.weight"
    agent, _ = agent_factory("--task=PuckPush-v0")
    assert live.is_live(key, agent) and live.read(agent, key, None) == 5.0
    live.write(agent, {key: 0.5})
    assert agent.vec_env.reward_weights["push"] == 0.5 and live.read(agent, key, None) == 0.5
    # and the env really pays the new weight: an identical env with the old weight differs by the push term
    import torch

    from isaaclab_pbt.tasks.puck_push import PuckPushEnv

    old, new = PuckPushEnv(16, seed=3), PuckPushEnv(16, seed=3, rewards={"push": {"weight": 0.5}})
    old.reset(), new.reset()
    gap, pushed = torch.zeros(16), 0.0
    for _ in range(10):  # walk the finger into the puck so that the puck moves
        toward = old.puck - old.finger
        action = toward / toward.norm(dim=1, keepdim=True)
        (_, r_old, _, i_old), (_, r_new, _, i_new) = old.step(action), new.step(action)
        gap += r_old - r_new
        pushed += float(i_old["episode"]["Episode_Reward/push"]) / 5.0
        assert torch.allclose(i_new["episode"]["Episode_Reward/push"], 0.5 * i_old["episode"]["Episode_Reward/push"] / 5.0)
    assert pushed != 0.0 and gap.abs().sum() > 0


def test_reward_weights_of_an_env_without_a_setter_need_a_restart(agent_factory):
    agent, _ = agent_factory()  # PointReach has no reward terms to set
    assert not live.is_live("env.rewards.push.weight", agent)
    assert live.is_live("env.rewards.push.weight")  # without an agent: the path alone looks live
