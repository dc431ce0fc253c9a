"""An skrl PBT population on Isaac Lab 3.0's Isaac-Cartpole: real processes, Isaac Lab's own skrl config, skrl's wrapper."""

import torch

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.skrl.learner import SkrlLearner

from ..conftest import ROOT, run_population

SCRIPT = str(ROOT / "scripts" / "skrl" / "train.py")


def test_skrl_in_place_replacement_on_isaac_lab_3(tmp_path, il_env):
    # Isaac Lab's skrl Cartpole config (16 rollouts per update) without its KL-adaptive scheduler, so the sabotaged
    # learning rate stays what it was set to; 1 s episodes, so the pole's episode penalty is logged from the second
    # interval on. Thresholds of 0: of two members with different objectives, one leads and one lags at every tick.
    common = ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=16", "--headless", "--device=cpu",
              "env.episode_length_s=1", "agent.agent.learning_rate_scheduler=null", "agent.pbt.enabled=True",
              "agent.pbt.num_policies=2", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
              "agent.pbt.interval_steps=512", "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0",
              "agent.pbt.objective=episode.Episode_Reward/pole_pos", "agent.pbt.keep_checkpoints=100",
              "agent.pbt.burn_in_steps=1024", "agent.pbt.apply=in-place",
              "agent.pbt.mutation={agent.agent.learning_rate:mutate_float,agent.agent.value_loss_scale:mutate_float}"]
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *(["agent.agent.learning_rate=1e-8"] if i else [])]
               for i in range(2)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=1, env=il_env, timeout=900, script=SCRIPT)
    ws = Workspace(str(tmp_path / "ws"))
    events = [(idx, e) for idx in (0, 1) for e in ws.lineage(idx) if e["event"] == "replaced"]
    assert events, (tmp_path / "member1.log").read_text()[-4000:]
    idx, entry = events[0]
    assert entry["applied"] == "in-place" and entry["donor"] == 1 - idx
    donor = torch.load(ws.weights_path(entry["donor"], entry["donor_iteration"]), map_location="cpu", weights_only=True)
    assert entry["weights_sha256"] == SkrlLearner.digest(None, donor)
    for member in (0, 1):  # both trained to the end, publishing every interval, as skrl members
        records = [r for r in (ws.read_record(member, it) for it in ws.iterations(member)) if r is not None]
        assert [r.iteration for r in records] == list(range(1, 9))
        assert {r.library for r in records} == {"skrl"}
    after = [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r.iteration > entry["iteration"]]
    assert after and after[0].hyperparameters["agent.agent.learning_rate"] == entry["hyperparameters"]["agent.agent.learning_rate"]
