"""``agent.pbt.mode=batched`` for rl_games: the members' models stacked into one PPO, each lane equal to rl_games' own A2CAgent.

The equality test feeds the same rollout to the batched PPO and to one real rl_games ``A2CAgent``
per lane (its ``play_steps`` replaced by that rollout, so its own ``train_epoch`` does the whole
update: GAE is rl_games' ``discount_values``, then ``prepare_dataset`` and the mini-epochs), and
compares the rollout's values and log-probabilities and, after the update, every weight,
normaliser statistic, Adam moment and the learning rate. rl_games builds its models in float32,
so the comparison allows float32 rounding.
"""

from __future__ import annotations

import glob
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rl_games")

from isaaclab_pbt.core.errors import UsageError  # noqa: E402
from isaaclab_pbt.core.workspace import Workspace  # noqa: E402
from isaaclab_pbt.rl_games import learner as rl_learner  # noqa: E402
from isaaclab_pbt.rl_games.batched import build_a2c, train_batched  # noqa: E402
from isaaclab_pbt.rl_games.train import configure, parse_args  # noqa: E402
from tests.conftest import make_agent  # noqa: E402

ENVS, STEPS = 32, 16
LANES = [dict(learning_rate=3e-3, mini_epochs=2, entropy_coef=0.01, critic_coef=2.0, bounds_loss_coef=1e-4, grad_norm=1.0,
              e_clip=0.2, gamma=0.99, tau=0.95, kl_threshold=1e-5),
         dict(learning_rate=1e-3, mini_epochs=3, entropy_coef=0.0, critic_coef=0.5, bounds_loss_coef=0.1, grad_norm=0.05,
              e_clip=0.05, gamma=0.9, tau=0.8, kl_threshold=10.0)]  # a tight gradient clip, a loose KL target
"""Two members different in every per-lane value; under the adaptive schedule lane 0's KL target is
so small that its learning rate falls, and lane 1's so large that it rises."""


def _agents(tmp_path, schedule: str, schedule_type: str):
    agents = []
    for i, values in enumerate(LANES):
        agent, cfg = make_agent(tmp_path / f"logs{i}", [f"--seed={i}", f"agent.params.config.lr_schedule={schedule}",
                                                         f"+agent.params.config.schedule_type={schedule_type}"], run=f"run{i}")
        rl_learner.write(agent, {rl_learner.PREFIX + k: v for k, v in values.items()})  # the live path PBT uses
        agents.append((agent, cfg))
    return agents


@pytest.mark.parametrize("schedule,schedule_type", [("fixed", "legacy"), ("adaptive", "legacy"), ("adaptive", "standard")])
def test_each_lane_of_an_epoch_is_rl_games_own_a2c(tmp_path, schedule, schedule_type):
    from rl_games.common.a2c_common import swap_and_flatten01

    agents = _agents(tmp_path, schedule, schedule_type)
    cfgs = [cfg for _, cfg in agents]
    for cfg, values in zip(cfgs, LANES):
        cfg["params"]["config"].update(values)
    env = agents[0][0].vec_env
    ppo = build_a2c(cfgs, env.observation_space, env.action_space, ENVS, "cpu")
    assert ppo.minibatch_size == 256 and ppo.batch_size == 512  # two minibatches per mini-epoch
    for i, (agent, _) in enumerate(agents):
        agent.set_full_state_weights({**ppo.lane_state(i), "epoch": 0, "frame": 0}, set_epoch=False)  # rl_games' loader
    gen = torch.Generator().manual_seed(0)
    obs = 3.0 * torch.randn(2, ENVS, ppo.model.tensors["running_mean_std.running_mean"].shape[1], generator=gen) + 1.0
    theirs = [{k: [] for k in ("obses", "actions", "neglogpacs", "values", "mus", "sigmas", "dones", "rewards")} for _ in agents]
    dones_before = torch.ones(2, ENVS, dtype=torch.uint8)  # rl_games starts with every env done
    for _ in range(STEPS):
        ppo.act(obs)
        ours = ppo._transition
        for i, (agent, _) in enumerate(agents):
            res = agent.get_action_values({"obs": obs[i]})
            torch.testing.assert_close(ours["mus"][i], res["mus"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours["sigmas"][i], res["sigmas"])
            torch.testing.assert_close(ours["values"][i], res["values"], rtol=1e-5, atol=1e-5)
            neglogp = agent.model.neglogp(ours["actions"][i], res["mus"], res["sigmas"], res["sigmas"].log())
            torch.testing.assert_close(ours["neglogpacs"][i], neglogp, rtol=1e-5, atol=1e-5)
            for k in ("obses", "actions", "neglogpacs", "values", "mus", "sigmas"):
                theirs[i][k].append(ours[k][i].clone())  # the batched PPO's sample, so both learn from one rollout
            theirs[i]["dones"].append(dones_before[i].clone())
        rewards = torch.randn(2, ENVS, generator=gen)
        dones = torch.rand(2, ENVS, generator=gen) < 0.2
        time_outs = dones & (torch.rand(2, ENVS, generator=gen) < 0.5)
        ppo.process_env_step(rewards, dones, time_outs)
        for i, (agent, _) in enumerate(agents):
            shaped = agent.rewards_shaper(rewards[i].unsqueeze(1))
            shaped = shaped + agent.gamma * theirs[i]["values"][-1] * time_outs[i].unsqueeze(1).float()
            theirs[i]["rewards"].append(shaped)
        dones_before = dones.to(torch.uint8)
        obs = 3.0 * torch.randn(2, ENVS, obs.shape[-1], generator=gen) + 1.0
    ppo.compute_returns(obs)
    losses = ppo.update()
    for i, (agent, _) in enumerate(agents):
        mb = {k: torch.stack(v) for k, v in theirs[i].items()}
        last_values = agent.get_values({"obs": obs[i]})
        advantages = agent.discount_values(dones_before[i].float(), last_values, mb["dones"].float(), mb["values"], mb["rewards"])
        batch = {k: swap_and_flatten01(v) for k, v in mb.items() if k != "rewards"}
        batch.update(returns=swap_and_flatten01(advantages + mb["values"]), played_frames=ppo.batch_size, step_time=0.0)
        agent.play_steps = lambda batch=batch: batch
        agent.update_epoch()
        result = agent.train_epoch()
        a_losses = result[4]
        assert len(a_losses) == 2 * LANES[i]["mini_epochs"]
        assert float(losses["a_loss"][i]) == pytest.approx(float(torch.stack(a_losses).detach().mean()), rel=1e-4, abs=1e-6)
        saved, mine = agent.get_full_state_weights(), ppo.lane_state(i)
        assert set(mine["model"]) == set(saved["model"])
        for key, tensor in saved["model"].items():
            torch.testing.assert_close(mine["model"][key], tensor, rtol=1e-4, atol=1e-6, msg=f"lane {i} model.{key}")
        assert set(mine["optimizer"]["state"]) == set(saved["optimizer"]["state"])
        for index, entry in saved["optimizer"]["state"].items():
            ours = mine["optimizer"]["state"][index]
            assert float(ours["step"]) == float(entry["step"]) == 2 * LANES[i]["mini_epochs"]
            torch.testing.assert_close(ours["exp_avg"], entry["exp_avg"], rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(ours["exp_avg_sq"], entry["exp_avg_sq"], rtol=1e-4, atol=1e-9)
        lr = float(ppo.hp["learning_rate"][i])
        assert lr == pytest.approx(agent.last_lr, rel=1e-6)  # a lane keeps its values in float32
        if schedule == "adaptive":
            assert (lr < LANES[i]["learning_rate"]) if i == 0 else (lr > LANES[i]["learning_rate"])
        else:
            assert lr == pytest.approx(LANES[i]["learning_rate"], rel=1e-6)


def _population(tmp_path, extra=(), configure_member=None, epochs=8):
    args, ov = parse_args(["--task=PointReach-v0", "--num_envs=16", f"--max_iterations={epochs}", "--seed=0",
                           "agent.pbt.enabled=True", "agent.pbt.mode=batched", "agent.pbt.num_policies=2",
                           f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=1024",
                           "agent.params.config.minibatch_size=128", *extra])
    agent_cfg, env_cfg, pbt = configure(args, ov)
    return train_batched(args, agent_cfg, env_cfg, pbt, command=None, configure_member=configure_member), agent_cfg


def test_a_lanes_checkpoint_is_an_rl_games_checkpoint(tmp_path):
    """A batched member's ``nn/last_*.pth`` and its published weights load with rl_games' own ``restore``, and act the same."""
    learners, _ = _population(tmp_path)
    runner = learners[1].runner
    a2c = runner.a2c
    obs = torch.randn(2, 16, a2c.model.tensors["running_mean_std.running_mean"].shape[1])
    expected = a2c.model.forward(obs)[0][1].detach()
    last = glob.glob(os.path.join(learners[1].run_dir, "nn", "last_point_reach_ep_8_rew_*.pth"))
    assert len(last) == 1
    agent, _ = make_agent(tmp_path / "check", ["--seed=5"])
    agent.restore(last[0])  # rl_games' loader, unrestricted pickle and all
    assert agent.epoch_num == 8 and agent.frame == 8 * a2c.batch_size
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(float(a2c.hp["learning_rate"][1]))
    acted = agent.get_action_values({"obs": obs[1]})["mus"]
    torch.testing.assert_close(acted, expected, rtol=1e-5, atol=1e-6)
    ws = Workspace(str(tmp_path / "ws"))
    agent.restore(ws.weights_path(1, ws.iterations(1)[-1]))
    torch.testing.assert_close(agent.get_action_values({"obs": obs[1]})["mus"], expected, rtol=1e-5, atol=1e-6)


def test_a_batched_population_rescues_a_sabotaged_member_in_memory(tmp_path):
    """The scenario of test_sabotage_rescue.py: member 003 learns nothing (learning rate 1e-8) until a donor's lane replaces it."""
    sabotaged, lr = 3, rl_learner.PREFIX + "learning_rate"

    def sabotage(idx, cfg):
        if idx == sabotaged:
            cfg["params"]["config"]["learning_rate"] = 1e-8

    args, ov = parse_args(["--task=PointReach-v0", "--num_envs=64", "--max_iterations=60", "--seed=0", "agent.pbt.enabled=True",
                           "agent.pbt.mode=batched", "agent.pbt.num_policies=4", f"agent.pbt.directory={tmp_path}",
                           "agent.pbt.workspace=ws", "agent.pbt.interval_steps=4096", "agent.pbt.keep_checkpoints=100"])
    agent_cfg, env_cfg, pbt = configure(args, ov)
    learners = train_batched(args, agent_cfg, env_cfg, pbt, command=None, configure_member=sabotage)
    ws = Workspace(str(tmp_path / "ws"))
    records = {i: [r for r in (ws.read_record(i, it) for it in ws.iterations(i)) if r is not None] for i in range(4)}
    assert {r.pid for rs in records.values() for r in rs} == {os.getpid()}
    assert {r.library for rs in records.values() for r in rs} == {"rl_games"}
    assert all(len(records[i]) == 60 * 1024 // 4096 for i in range(4))
    replaced = [e for e in ws.lineage(sabotaged) if e["event"] == "replaced"]
    assert replaced, [e["event"] for e in ws.lineage(sabotaged)]
    first = replaced[0]
    published = learners[0].load(ws.weights_path(first["donor"], first["donor_iteration"]))
    assert first["applied"] == "in-place" and first["weights_sha256"] == learners[0].digest(published)  # the donor's very state
    after = [r for r in records[sabotaged] if r.frame > first["frame"]]
    assert after[0].hyperparameters[lr] == pytest.approx(first["hyperparameters"][lr]) and first["hyperparameters"][lr] != 1e-8
    live = float(learners[sabotaged].runner.a2c.hp["learning_rate"][sabotaged])  # what lane 003 trains with now
    assert live == pytest.approx(records[sabotaged][-1].hyperparameters[lr], rel=1e-6)
    best_after = max(r.objective for r in after)
    print(f"batched rl_games: sabotaged member objective {first['objective']:.4f} at the swap, best after {best_after:.4f}")
    assert best_after > 5 * max(first["objective"], 0.01)


def _refusal(tmp_path, extra, configure_member=None) -> str:
    with pytest.raises(UsageError) as caught:
        _population(tmp_path, extra, configure_member, epochs=2)
    assert not os.path.exists(tmp_path / "logs")  # refused before any run folder
    return str(caught.value)


def test_members_of_other_shapes_are_refused(tmp_path):
    def wider(idx, cfg):
        if idx == 1:
            cfg["params"]["network"]["mlp"]["units"] = [64, 64]

    message = _refusal(tmp_path, [], wider)
    assert message.startswith("agent.params.network.mlp.units: member 001 differs from member 000")


def test_another_network_is_refused(tmp_path):
    message = _refusal(tmp_path, ["agent.params.network.separate=True"])
    assert message.startswith("agent.params.network.separate: agent.pbt.mode=batched trains False, got 'True'")


def test_a_restart_only_key_is_refused(tmp_path):
    message = _refusal(tmp_path, ["+agent.pbt.mutation.agent.params.config.minibatch_size=mutate_int"])
    assert message.startswith("agent.pbt.mode: 'batched' changes hyperparameters in place only")
