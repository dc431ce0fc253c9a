"""The skrl backend's library-specific parts on a real skrl 2.x PPO agent built by skrl's own Runner (no mocks)."""

from __future__ import annotations

import io
import math

import pytest
import torch
import yaml

pytest.importorskip("skrl")

from isaaclab_pbt.core.errors import UsageError  # noqa: E402
from isaaclab_pbt.skrl import learner as live  # noqa: E402
from isaaclab_pbt.skrl import state  # noqa: E402
from isaaclab_pbt.skrl.env import make_embedded  # noqa: E402
from isaaclab_pbt.skrl.learner import SkrlLearner  # noqa: E402
from isaaclab_pbt.skrl.runner import build_runner  # noqa: E402
from isaaclab_pbt.skrl.train import configure  # noqa: E402
from isaaclab_pbt.tasks import CONFIG_DIR  # noqa: E402

A = live.PREFIX


def agent_cfg(**agent) -> dict:
    with open(f"{CONFIG_DIR}/puck_push_skrl_ppo.yaml", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    cfg["agent"].update(agent)
    return cfg


def runner(tmp_path, seed=0, layers=(32, 32), iterations=2, **agent):
    cfg = agent_cfg(**agent)
    cfg["seed"] = seed
    for role in ("policy", "value"):
        cfg["models"][role]["network"][0]["layers"] = list(layers)
    cfg["agent"]["experiment"]["write_interval"] = 0
    cfg["agent"]["experiment"]["checkpoint_interval"] = 0
    env = make_embedded("PuckPush-v0", 16, cfg["env"], seed=seed)
    return build_runner(cfg, env, str(tmp_path / f"run{seed}"), iterations), env


def test_live_keys_are_the_settings_ppo_update_reads(tmp_path):
    r, env = runner(tmp_path, learning_rate_scheduler="KLAdaptiveLR", learning_rate_scheduler_kwargs={"kl_threshold": 0.01})
    agent = r.agent
    live.write(agent, {A + "learning_rate": 7e-4, A + "discount_factor": 0.9, A + "lambda": 0.8,
                          A + "learning_epochs": 2.6, A + "mini_batches": 3.2, A + "ratio_clip": 0.1,
                          A + "entropy_loss_scale": 0.02, A + "value_loss_scale": 0.5, A + "grad_norm_clip": 0.7,
                          A + "value_clip": 0.3, A + "kl_threshold": 0.05, A + "rewards_shaper_scale": 0.5,
                          A + "learning_rate_scheduler_kwargs.kl_threshold": 0.02,
                          "env.rewards.push.weight": 2.0, A + "rollouts": 4}, env)
    assert all(g["lr"] == 7e-4 for g in agent.optimizer.param_groups) and agent.cfg.learning_rate == (7e-4, 7e-4)
    assert agent.scheduler.base_lrs == [7e-4] and agent.scheduler.kl_threshold == 0.02
    c = agent.cfg
    assert (c.discount_factor, c.gae_lambda, c.ratio_clip, c.entropy_loss_scale, c.value_loss_scale) == (0.9, 0.8, 0.1, 0.02, 0.5)
    assert (c.grad_norm_clip, c.value_clip, c.kl_threshold) == (0.7, 0.3, 0.05)
    assert (c.learning_epochs, c.mini_batches) == (3, 3) and isinstance(c.learning_epochs, int)
    assert c.rewards_shaper(torch.ones(2)).tolist() == [0.5, 0.5]
    assert env.task.reward_weights["push"] == 2.0
    assert c.rollouts == 16 and not live.is_live(A + "rollouts")  # sizes the memory: a restart
    assert live.read(agent, A + "rollouts", 16) == 16
    assert live.read(agent, A + "lambda", 0.95) == 0.8 and live.read(agent, A + "learning_rate", 1e-3) == 7e-4
    # a real PPO update reads them: with the KL threshold that early, it stops at the first mini-batch
    # of every epoch, and the rate moved by the KL-adaptive schedule starts from the one PBT set
    seen = []
    sample = agent.memory.sample
    agent.memory.sample = lambda **kw: (seen.append(kw["mini_batches"]), sample(**kw))[1]
    live.write(agent, {A + "kl_threshold": 1e-12})
    r.run("train")
    assert seen == [3, 3, 3] * 2  # two updates of learning_epochs=3, mini_batches=3
    lr = agent.optimizer.param_groups[0]["lr"]
    steps = math.log(lr / 7e-4) / math.log(1.5)  # KLAdaptiveLR multiplies or divides by 1.5 per epoch
    assert lr != 7e-4 and abs(steps - round(steps)) < 1e-6, lr


def test_the_fixed_rate_is_kept_through_real_updates(tmp_path):
    r, _ = runner(tmp_path)
    live.write(r.agent, {A + "learning_rate": 3e-4})
    r.run("train")
    assert r.agent.optimizer.param_groups[0]["lr"] == 3e-4


def _publish(r, env, iteration=3):
    buf = io.BytesIO()
    torch.save(state.training_state(r.agent, env, iteration), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_a_fitting_donor_state_replaces_models_optimiser_preprocessors_and_curriculum(tmp_path):
    (donor, donor_env), (member, member_env) = runner(tmp_path, seed=1), runner(tmp_path, seed=2)
    donor.run("train")
    donor_env.task.level = torch.full_like(donor_env.task.level, 7)
    loaded = _publish(donor, donor_env)
    assert set(loaded) == {"policy", "value", "optimizer", "observation_preprocessor", "value_preprocessor", "pbt"}
    assert loaded["pbt"]["iter"] == 3
    assert state.misfit(member.agent, loaded) is None
    state.load_into(member.agent, loaded, member_env)
    for name in ("policy", "value", "observation_preprocessor", "value_preprocessor"):
        own = member.agent.checkpoint_modules[name].state_dict()
        theirs = donor.agent.checkpoint_modules[name].state_dict()
        assert own.keys() == theirs.keys()
        assert all(torch.equal(own[k], theirs[k]) for k in own), name  # weights and running means/variances
    assert float(member.agent._observation_preprocessor.current_count) > 1  # the donor's statistics, not a fresh scaler
    own_opt, donor_opt = member.agent.optimizer.state_dict()["state"], donor.agent.optimizer.state_dict()["state"]
    assert own_opt.keys() == donor_opt.keys() and all(torch.equal(own_opt[k]["exp_avg"], donor_opt[k]["exp_avg"]) for k in own_opt)
    assert bool((member_env.task.level == 7).all())
    learner = SkrlLearner(member.agent, member_env, 10, str(tmp_path))
    assert learner.digest(loaded) == learner.digest(state.training_state(member.agent))
    member.run("train")  # it trains on from there


def test_a_donor_that_does_not_fit_is_refused_whole_before_anything_is_copied(tmp_path):
    (member, env), (other, other_env) = runner(tmp_path, seed=0), runner(tmp_path, seed=3, layers=(16, 16))
    before = {k: v.clone() for k, v in state.training_state(member.agent)["policy"].items()}
    assert "shape" in state.misfit(member.agent, _publish(other, other_env))
    good, _ = runner(tmp_path, seed=4)
    good.run("train")
    poisoned = _publish(good, env)
    poisoned["value_preprocessor"]["running_variance"].fill_(float("nan"))
    assert "value_preprocessor.running_variance holds NaN" in state.misfit(member.agent, poisoned)
    negative = _publish(good, env)
    negative["observation_preprocessor"]["running_variance"].fill_(-1.0)
    assert "negative" in state.misfit(member.agent, negative)
    moments = _publish(good, env)
    next(iter(moments["optimizer"]["state"].values()))["exp_avg"] = torch.zeros(3)
    assert "optimizer.state" in state.misfit(member.agent, moments)
    no_scaler = _publish(good, env)
    del no_scaler["observation_preprocessor"]
    assert state.misfit(member.agent, no_scaler) == "observation_preprocessor missing"
    bad_lr = _publish(good, env)
    bad_lr["optimizer"]["param_groups"][0]["lr"] = float("inf")
    assert "learning rate" in state.misfit(member.agent, bad_lr)
    assert state.misfit(member.agent, "not a state") == "not a training state"
    after = state.training_state(member.agent)["policy"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_published_state_loads_with_skrl_own_agent_load(tmp_path):
    (donor, donor_env), (member, _) = runner(tmp_path, seed=5), runner(tmp_path, seed=6)
    donor.run("train")
    path = tmp_path / "agent.pt"
    torch.save(state.training_state(donor.agent, donor_env, 2), path)
    member.agent.load(str(path))  # skrl's loader; it skips our 'pbt' entry with a warning
    for name in ("policy", "value", "value_preprocessor"):
        own, theirs = member.agent.checkpoint_modules[name].state_dict(), donor.agent.checkpoint_modules[name].state_dict()
        assert all(torch.equal(own[k], theirs[k]) for k in own), name


def test_bad_skrl_settings_are_one_line_naming_the_key(tmp_path):
    with pytest.raises(UsageError, match=r"agent\.agent\.discount_factor: must be a number in \(0, 1\], got 1\.5"):
        configure(["agent.agent.discount_factor=1.5"])
    with pytest.raises(UsageError, match=r"agent\.agent\.learnig_rate: not a setting of skrl's PPO; did you mean agent\.agent\.learning_rate\?"):
        configure(["+agent.agent.learnig_rate=0.1"])
    with pytest.raises(UsageError, match=r"agent\.agent\.learning_rate_scheduler: must be one of KLAdaptiveLR or null"):
        configure(["agent.agent.learning_rate_scheduler='os.system(\"true\")'"])
    with pytest.raises(UsageError, match=r"agent\.pbt\.apply: 'in-place' cannot change agent\.agent\.rollouts"):
        configure(["agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}", "agent.pbt.apply=in-place",
                   "+agent.pbt.mutation.agent.agent.rollouts=mutate_int"])
    with pytest.raises(UsageError, match=r"agent\.pbt\.mode: 'batched' is not available with this RL library, which runs "
                                         r"processes, shared; 'batched' trains rl_games' or rsl_rl's PPO"):
        configure(["agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}", "agent.pbt.mode=batched"])


def test_the_env_wrapper_gives_skrl_shapes_and_the_task_infos():
    env = make_embedded("PointReach-v0", 8, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (8, 5) and env.state() is None and env.num_envs == 8
    for _ in range(60):  # one episode length: every env has ended once
        obs, reward, terminated, truncated, infos = env.step(torch.zeros(8, 2))
        assert reward.shape == terminated.shape == truncated.shape == (8, 1)
        assert not bool((terminated & truncated).any())
    assert bool(truncated.all()) and "Curriculum/adr" in infos["episode"]  # the objective, where the other libraries find it


def test_a_run_resumes_from_skrl_own_checkpoint_with_the_config_learning_rate(tmp_path, monkeypatch):
    from isaaclab_pbt.skrl.train import train

    monkeypatch.chdir(tmp_path)
    first = train(["--num_envs=16", "--max_iterations=10"])
    [saved] = (tmp_path / "logs" / "skrl" / "point_reach").glob("*/checkpoints/agent_160.pt")  # skrl's own file
    resumed = train(["--num_envs=16", "--max_iterations=2", f"--checkpoint={saved}", "agent.agent.learning_rate=2e-4"])
    assert resumed.agent.optimizer.param_groups[0]["lr"] == 2e-4  # not the checkpoint's 1e-3
    assert (first.done_iterations, resumed.done_iterations) == (10, 2)  # a plain skrl checkpoint carries no PBT iteration
    cfg = yaml.safe_load(open(f"{CONFIG_DIR}/point_reach_skrl_ppo.yaml", encoding="utf-8"))
    cfg["models"]["policy"]["network"][0]["layers"] = [8]
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(UsageError, match="does not fit this agent: policy"):
        train(["--num_envs=16", "--max_iterations=1", f"--checkpoint={saved}", f"--agent={tmp_path / 'small.yaml'}"])


def test_a_block_sees_its_own_slice_of_a_privileged_critic_state():
    import threading

    from isaaclab_pbt.shared.lockstep import LockstepEnv
    from isaaclab_pbt.skrl.shared import BlockSkrlEnv
    from isaaclab_pbt.tasks.point_reach import PointReachEnv

    class WithStates:  # an env with a critic group, as SharedIsaacLabSkrlEnv presents Isaac Lab's
        def __init__(self):
            self.task = PointReachEnv(8, seed=0, num_blocks=2)
            self.num_envs, self.device = 8, self.task.device
            self.observation_space, self.action_space = self.task.observation_space, self.task.action_space
            self.state_space = self.task.observation_space

        def reset(self):
            obs = self.task.reset()
            return {"obs": obs, "states": -obs}

        def step(self, actions):
            obs, reward, done, infos = self.task.step(actions)
            return {"obs": obs, "states": -obs}, reward, done, infos

    lockstep = LockstepEnv(WithStates(), 2, timeout=30)
    blocks = [BlockSkrlEnv(lockstep, idx) for idx in (0, 1)]
    assert blocks[1].state_space is not None and blocks[1].num_envs == 4
    obs, _ = blocks[1].reset()
    assert torch.equal(blocks[1].state(), -obs) and obs.shape[0] == 4
    stepped = {}

    def step(idx):
        stepped[idx] = blocks[idx].step(torch.zeros(4, 2))[0]

    threads = [threading.Thread(target=step, args=(idx,)) for idx in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for idx in (0, 1):  # after a step each block's state is its own envs' rows of the whole env's
        assert torch.equal(blocks[idx].state(), -stepped[idx])
        assert torch.equal(stepped[idx], lockstep._obs["obs"][lockstep.block(idx)])
    assert not torch.equal(stepped[0], stepped[1])
