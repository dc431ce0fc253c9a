"""PBT populations on Isaac Lab 3.0's Isaac-Cartpole: real processes, kit-less Newton physics on CPU."""

import torch
import yaml

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rl_games import checkpoint

from ..conftest import run_population


def _common(tmp_path, apply):
    # thresholds of 0: of two members with different objectives, one leads and one lags at every tick
    return ["--task=Isaac-Cartpole", "--num_envs=16", "--max_iterations=12", "--headless", "--device=cpu",
            "agent.params.config.minibatch_size=256", "agent.pbt.enabled=True", "agent.pbt.num_policies=2",
            f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=512",
            "agent.pbt.threshold_std=0", "agent.pbt.threshold_abs=0", "agent.pbt.objective=episode.Episode_Reward/alive",
            "agent.pbt.keep_checkpoints=100", "agent.pbt.burn_in_steps=1024", f"agent.pbt.apply={apply}"]


def _population(tmp_path, il_env, apply):
    common = _common(tmp_path, apply)
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *(["agent.params.config.learning_rate=1e-8"] if i else [])]
               for i in range(2)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=1, env=il_env, timeout=900)
    return Workspace(str(tmp_path / "ws")), common


def _records(ws, idx):
    return [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]


def test_in_place_replacement_on_isaac_lab_3(tmp_path, il_env):
    ws, _ = _population(tmp_path, il_env, "in-place")
    events = [(idx, e) for idx in (0, 1) for e in ws.lineage(idx) if e["event"] == "replaced"]
    assert events, (tmp_path / "member1.log").read_text()[-4000:]
    idx, entry = events[0]
    assert entry["applied"] == "in-place" and entry["donor"] == 1 - idx
    donor_file = ws.weights_path(entry["donor"], entry["donor_iteration"])
    assert entry["weights_sha256"] == checkpoint.model_digest(torch.load(donor_file, weights_only=True)["model"])
    # training went on to the end in both members, publishing every interval
    for member in (0, 1):
        assert [r.iteration for r in _records(ws, member)] == list(range(1, 7))


def test_restart_replacement_on_isaac_lab_3(tmp_path, il_env):
    ws, common = _population(tmp_path, il_env, "restart")
    events = [(idx, e) for idx in (0, 1) for e in ws.lineage(idx) if e.get("applied") == "restart"]
    assert events, (tmp_path / "member1.log").read_text()[-4000:]
    idx = events[0][0]
    mine = [e for i, e in events if i == idx]
    first, last = mine[0], mine[-1]
    records = _records(ws, idx)
    assert len({r.pid for r in records}) == 1  # re-executed in place: the same process
    after = [r for r in records if r.time > first["time"]]
    assert after and after[0].iteration == first["iteration"] + 1  # frames went on from where they were
    [run] = [p for p in (tmp_path / "logs" / "rl_games" / "cartpole").iterdir() if p.name.endswith(f"_pbt{idx:03d}")]
    argv = yaml.safe_load((run / "params" / "command.yaml").read_text())["argv"]
    for token in common:
        assert token in argv, token
    assert f"--checkpoint={run}/nn/pbt_{last['iteration']:06d}_from_{last['donor']:03d}.pth" in argv
    # the restarted process's own config holds the values of its last replacement
    agent = yaml.safe_load((run / "params" / "agent.yaml").read_text())
    for key, value in last["hyperparameters"].items():
        node = agent
        for part in key.split(".")[1:]:
            node = node[part]
        assert node == value, key
    log = (tmp_path / f"member{idx}.log").read_text()
    assert log.count("=> loading checkpoint") == len(mine)
