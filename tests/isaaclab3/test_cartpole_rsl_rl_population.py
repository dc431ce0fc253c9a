"""An rsl_rl PBT population on Isaac Lab 3.0's Isaac-Cartpole: real processes, Isaac Lab's own rsl_rl config and wrapper."""

import torch
import yaml

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rsl_rl.learner import RslRlLearner

from ..conftest import ROOT, run_population

SCRIPT = str(ROOT / "scripts" / "rsl_rl" / "train.py")


def _common(tmp_path, apply):
    # Isaac Lab's CartpolePPORunnerCfg (16 steps per iteration); a fixed schedule, so the sabotaged
    # learning rate stays what it was set to; 1 s episodes (an env override, through Isaac Lab), so
    # the pole's episode penalty is logged from the second interval on. Thresholds of 0: of two
    # members with different objectives, one leads and one lags at every tick.
    return ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=16", "--headless", "--device=cpu",
            "env.episode_length_s=1",
            "agent.algorithm.schedule=fixed", "agent.pbt.enabled=True", "agent.pbt.num_policies=2",
            f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=512",
            "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0", "agent.pbt.objective=episode.Episode_Reward/pole_pos",
            "agent.pbt.keep_checkpoints=100", "agent.pbt.burn_in_steps=1024", f"agent.pbt.apply={apply}",
            "agent.pbt.mutation={agent.algorithm.learning_rate:mutate_float,agent.algorithm.entropy_coef:mutate_float}"]


def _population(tmp_path, il_env, apply):
    common = _common(tmp_path, apply)
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *(["agent.algorithm.learning_rate=1e-8"] if i else [])]
               for i in range(2)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=1, env=il_env, timeout=900, script=SCRIPT)
    return Workspace(str(tmp_path / "ws")), common


def _replacements(ws):
    return [(idx, e) for idx in (0, 1) for e in ws.lineage(idx) if e["event"] == "replaced"]


def test_rsl_rl_in_place_replacement_on_isaac_lab_3(tmp_path, il_env):
    ws, _ = _population(tmp_path, il_env, "in-place")
    events = _replacements(ws)
    assert events, (tmp_path / "member1.log").read_text()[-4000:]
    idx, entry = events[0]
    assert entry["applied"] == "in-place" and entry["donor"] == 1 - idx
    donor = torch.load(ws.weights_path(entry["donor"], entry["donor_iteration"]), map_location="cpu", weights_only=True)
    assert entry["weights_sha256"] == RslRlLearner.digest(None, donor)
    records = {m: [r for r in (ws.read_record(m, it) for it in ws.iterations(m)) if r is not None] for m in (0, 1)}
    for member in (0, 1):  # both trained to the end, publishing every interval, as rsl_rl members
        assert [r.iteration for r in records[member]] == list(range(1, 9))
        assert {r.library for r in records[member]} == {"rsl_rl"}
    # the replaced member's published lr after the swap is the donor's, mutated or not: never the sabotage again
    after = [r for r in records[idx] if r.iteration > entry["iteration"]]
    assert after and after[0].hyperparameters["agent.algorithm.learning_rate"] == entry["hyperparameters"]["agent.algorithm.learning_rate"]
    if idx == 1:
        assert after[0].hyperparameters["agent.algorithm.learning_rate"] > 1e-6


def test_rsl_rl_restart_replacement_on_isaac_lab_3(tmp_path, il_env):
    ws, common = _population(tmp_path, il_env, "restart")
    events = [(idx, e) for idx, e in _replacements(ws) if e.get("applied") == "restart"]
    assert events, (tmp_path / "member1.log").read_text()[-4000:]
    idx = events[0][0]
    mine = [e for i, e in events if i == idx]
    records = [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]
    assert len({r.pid for r in records}) == 1  # re-executed in place: the same process
    after = [r for r in records if r.time > mine[0]["time"]]
    assert after and after[0].iteration == mine[0]["iteration"] + 1  # iterations went on from where they were
    [run] = [p for p in (tmp_path / "logs" / "rsl_rl" / "cartpole").iterdir() if p.name.endswith(f"_pbt{idx:03d}")]
    agent = yaml.safe_load((run / "params" / "agent.yaml").read_text())  # written again by the restarted process
    assert agent["pbt_run_dir"] == str(run)
    for key, value in mine[-1]["hyperparameters"].items():
        assert agent["algorithm"][key.rsplit(".", 1)[-1]] == value, key
    assert (run / "params" / "env.yaml").is_file()
