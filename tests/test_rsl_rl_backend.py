"""The rsl_rl backend's library-specific parts on a real rsl_rl PPO learner (rsl-rl-lib 5.x, no mocks)."""

from __future__ import annotations

import io

import pytest
import torch
import yaml

pytest.importorskip("rsl_rl")

from isaaclab_pbt.rsl_rl import learner as live
from isaaclab_pbt.rsl_rl import state  # noqa: E402
from isaaclab_pbt.rsl_rl.env import make_embedded  # noqa: E402
from isaaclab_pbt.rsl_rl.runner import build_runner  # noqa: E402
from isaaclab_pbt.tasks import CONFIG_DIR  # noqa: E402


def agent_cfg(**algorithm) -> dict:
    with open(f"{CONFIG_DIR}/puck_push_rsl_rl_ppo.yaml", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    cfg["algorithm"].update(algorithm)
    return cfg


def learner(tmp_path, seed=0, hidden=(64, 64), **algorithm):
    cfg = agent_cfg(**algorithm)
    cfg["actor"]["hidden_dims"] = list(hidden)
    env = make_embedded("PuckPush-v0", 32, cfg["env"], seed=seed)
    torch.manual_seed(seed)
    return build_runner(cfg, env, log_dir=None)


def test_live_keys_are_the_algorithm_attributes_the_loop_reads(tmp_path):
    runner = learner(tmp_path)
    alg = runner.alg
    values = {live.PREFIX + "learning_rate": 7e-4, live.PREFIX + "gamma": 0.9, live.PREFIX + "lam": 0.8,
              live.PREFIX + "num_learning_epochs": 2.6, live.PREFIX + "clip_param": 0.1,
              "agent.num_steps_per_env": 8}
    live.write(alg, values)
    assert alg.learning_rate == 7e-4 and all(g["lr"] == 7e-4 for g in alg.optimizer.param_groups)
    assert (alg.gamma, alg.lam, alg.clip_param) == (0.9, 0.8, 0.1)
    assert alg.num_learning_epochs == 3 and isinstance(alg.num_learning_epochs, int)
    assert not live.is_live("agent.num_steps_per_env")
    assert live.read(alg, "agent.num_steps_per_env", 16) == 16  # restart-only: the config's value
    assert live.read(alg, live.PREFIX + "gamma", 0.99) == 0.9
    # the fixed schedule keeps the rate PBT set through a real update
    runner.learn(1)
    assert alg.optimizer.param_groups[0]["lr"] == 7e-4


def test_a_fitting_donor_state_replaces_weights_optimiser_normalisers_and_curriculum(tmp_path):
    donor, member = learner(tmp_path, seed=1), learner(tmp_path, seed=2)
    donor.learn(3)
    donor.env.task.level = torch.full_like(donor.env.task.level, 7)  # the rollout left an inference tensor
    published = state.training_state(donor)
    assert all(t.device.type == "cpu" for t in published["actor_state_dict"].values())
    buf = io.BytesIO()
    torch.save(published, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert state.misfit(member, loaded) is None
    state.load_into(member, loaded)
    for part in ("actor_state_dict", "critic_state_dict"):
        own = getattr(member.alg, "_raw_" + part.split("_")[0]).state_dict()
        for name, tensor in published[part].items():
            assert torch.equal(own[name], tensor), name  # weights and the normalisers' statistics
    assert member.alg.optimizer.state_dict()["state"].keys() == donor.alg.optimizer.state_dict()["state"].keys()
    assert bool((member.env.task.level == 7).all())
    member.learn(1)  # it trains on from there


def test_a_donor_that_does_not_fit_is_refused_before_anything_is_copied(tmp_path):
    member, other = learner(tmp_path, seed=0), learner(tmp_path, seed=3, hidden=(32, 32))
    before = {k: v.clone() for k, v in member.alg._raw_actor.state_dict().items()}
    assert "shape" in state.misfit(member, state.training_state(other))
    poisoned = state.training_state(learner(tmp_path, seed=4))
    next(iter(poisoned["critic_state_dict"].values())).fill_(float("nan"))
    assert "NaN" in state.misfit(member, poisoned)
    assert state.misfit(member, {"actor_state_dict": {}}) is not None
    assert state.misfit(member, "not a state") == "not a training state"
    after = member.alg._raw_actor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_published_state_loads_with_rsl_rl_own_runner_load(tmp_path):
    donor, member = learner(tmp_path, seed=5), learner(tmp_path, seed=6)
    donor.learn(2)
    path = tmp_path / "model.pt"
    torch.save(state.training_state(donor), path)
    member.load(str(path))
    assert member.current_learning_iteration == donor.current_learning_iteration
    for name, tensor in donor.alg._raw_actor.state_dict().items():
        assert torch.equal(member.alg._raw_actor.state_dict()[name].cpu(), tensor.cpu())
