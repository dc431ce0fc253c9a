"""Invalid configurations, each refused by the real command line before training: exit code 2,
one line naming the field and what is allowed, nothing created on disk."""

from __future__ import annotations

import os

import pytest

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rl_games.train import configure, main, parse_args

PBT = ["agent.pbt.enabled=True", "agent.pbt.num_policies=4", "agent.pbt.policy_idx=0"]
LR = "agent.params.config.learning_rate"

#: (command-line tokens, the field the error must start with, a fragment saying what is allowed)
CASES = {
    "enabled not a bool": (["agent.pbt.enabled=yes"], "agent.pbt.enabled", "True or False"),
    "no members": (["agent.pbt.enabled=True", "agent.pbt.num_policies=0"], "agent.pbt.num_policies", "at least 1"),
    "index past the population": ([*PBT, "agent.pbt.policy_idx=4"], "agent.pbt.policy_idx", "[0, 4)"),
    "negative index": ([*PBT, "agent.pbt.policy_idx=-1"], "agent.pbt.policy_idx", "[0, 4)"),
    "mutation rate above 1": ([*PBT, "agent.pbt.mutation_rate=2"], "agent.pbt.mutation_rate", "[0, 1]"),
    "change range below 1": ([*PBT, "agent.pbt.change_range=[0.5,2.0]"], "agent.pbt.change_range", "1 <= min <= max"),
    "zero interval": ([*PBT, "agent.pbt.interval_steps=0"], "agent.pbt.interval_steps", "positive"),
    "negative threshold": ([*PBT, "agent.pbt.threshold_std=-1"], "agent.pbt.threshold_std", ">= 0"),
    "workspace escapes": ([*PBT, "agent.pbt.workspace=../x"], "agent.pbt.workspace", "one folder inside"),
    "workspace is the directory": ([*PBT, "agent.pbt.workspace=."], "agent.pbt.workspace", "one folder inside"),
    "absolute workspace": ([*PBT, "agent.pbt.workspace=/tmp/ws"], "agent.pbt.workspace", "one folder inside"),
    "directory is a file": ([*PBT, "agent.pbt.directory=afile"], "agent.pbt.directory", "is a file"),
    "directory under a file": ([*PBT, "agent.pbt.directory=afile/sub"], "agent.pbt.directory", "not writable"),
    "in-place with a restart-only key": (
        [*PBT, "agent.pbt.apply=in-place", "+agent.pbt.mutation.agent.params.config.horizon_length=mutate_int"],
        "agent.pbt.apply", "use 'auto' or 'restart'"),
    "unknown population mode": ([*PBT, "agent.pbt.mode=threads"], "agent.pbt.mode", "processes, shared"),
    "one process restarting": ([*PBT, "agent.pbt.mode=shared", "agent.pbt.apply=restart"], "agent.pbt.apply",
                               "use 'in-place' or 'auto'"),
    "one process with a restart-only key": (
        [*PBT, "agent.pbt.mode=shared", "+agent.pbt.mutation.agent.params.config.horizon_length=mutate_int"],
        "agent.pbt.mode", "in place only"),
    "unknown apply mode": ([*PBT, "agent.pbt.apply=sometimes"], "agent.pbt.apply", "auto, in-place, restart"),
    "unknown reduction": ([*PBT, "agent.pbt.objective_reduce=median"], "agent.pbt.objective_reduce", "mean, max, last"),
    "quorum above the population": ([*PBT, "agent.pbt.min_initialized=9"], "agent.pbt.min_initialized", "[1, num_policies=4]"),
    "unknown mutation function": ([*PBT, f"agent.pbt.mutation.{LR}=mutate_sideways"], f"agent.pbt.mutation.{LR}", "allowed: "),
    "whitelisted key that does not exist": ([*PBT, "+agent.pbt.mutation.agent.params.config.nope=mutate_float"],
                                            "agent.pbt.mutation.agent.params.config.nope", "does not exist"),
    "one checkpoint kept": ([*PBT, "agent.pbt.keep_checkpoints=1"], "agent.pbt.keep_checkpoints", "at least 2"),
    "typo in a PBT key": ([*PBT, "agent.pbt.num_polices=4"], "agent.pbt.num_polices", "did you mean 'agent.pbt.num_policies'"),
    "PBT settings without enabled": (["agent.pbt.num_policies=4"], "agent.pbt.enabled", "add agent.pbt.enabled=True"),
    "unknown selection": ([*PBT, "agent.pbt.selection=tournament"], "agent.pbt.selection", "cuts, fractions"),
    "bounds upside down": ([*PBT, f"+agent.pbt.bounds.{LR}=[1e-2,1e-4]"], f"agent.pbt.bounds.{LR}", "low <= high"),
    "integer given text": (["agent.params.config.horizon_length=abc"], "agent.params.config.horizon_length", "an integer"),
    "a sweep": (["agent.params.config.gamma=0.9,0.95"], "agent.params.config.gamma", "one value expected"),
    "discount above 1": (["agent.params.config.gamma=1.5"], "agent.params.config.gamma", "in (0, 1]"),
    "negative learning rate": ([f"{LR}=-1e-3"], LR, "in (0, 1]"),
    "learning rate above 1": ([f"{LR}=5"], LR, "in (0, 1]"),
    "endless epochs": (["agent.params.config.mini_epochs=100000"], "agent.params.config.mini_epochs", "in [1, 100]"),
    "no epochs": (["agent.params.config.mini_epochs=0"], "agent.params.config.mini_epochs", "an integer in [1, 100]"),
    "fractional epochs": (["agent.params.config.mini_epochs=2.5"], "agent.params.config.mini_epochs", "an integer in [1, 100]"),
    "zero clip": (["agent.params.config.e_clip=0"], "agent.params.config.e_clip", "> 0"),
    "lambda above 1": (["agent.params.config.tau=1.2"], "agent.params.config.tau", "in [0, 1]"),
    "negative entropy": (["agent.params.config.entropy_coef=-0.1"], "agent.params.config.entropy_coef", ">= 0"),
    "infinite grad norm": (["agent.params.config.grad_norm=inf"], "agent.params.config.grad_norm", "> 0"),
    "flag given text": (["agent.params.config.normalize_input=maybe"], "agent.params.config.normalize_input", "True or False"),
    "minibatch does not divide": (["--num_envs=64", "agent.params.config.minibatch_size=3000"],
                                  "agent.params.config.minibatch_size", "use a divisor such as"),
    "typo in an agent key": ([f"{LR[:-1]}=1e-3"], "agent.params.config.learning_rat", f"did you mean '{LR}'"),
    "unknown root": (["policy.lr=1"], "override 'policy.lr=1'", "keys start with one of"),
    "a group given a value": (["agent.params.config=5"], "agent.params.config", "set one of them"),
    "adding a key that exists": (["+agent.params.config.gamma=0.9"], "agent.params.config.gamma", "drop the '+'"),
    "deleting a key that does not exist": (["~agent.params.config.nothing"], "agent.params.config.nothing", "no such key"),
    "bad override syntax": (["agent.params.config.gamma=[0.9"], "override 'agent.params.config.gamma=[0.9'", "Hydra override syntax"),
    "unknown flag": (["--num_env=4"], "unrecognized arguments: --num_env=4", "overrides look like"),
    "no envs": (["--num_envs=0"], "--num_envs", "at least 1"),
    "iterations given text": (["--max_iterations=ten"], "argument --max_iterations", "invalid int value"),
    "sigma given text": (["--sigma=wide"], "--sigma", "must be a number"),
    "distributed member": (["--distributed", *PBT], "--distributed", "one process on one device"),
    "video on the embedded task": (["--video"], "--video", "only Isaac Lab tasks"),
    "missing agent config": (["--agent=missing.yaml"], "--agent", "cannot read agent config"),
    "missing checkpoint": (["--checkpoint=missing.pth"], "--checkpoint", "cannot load missing.pth safely"),
    "missing schedule": (["--pbt_replay=missing.yaml"], "--pbt_replay", "cannot read missing.yaml"),
}


@pytest.mark.adversarial("configs rejected")
@pytest.mark.parametrize("argv, field, allowed", CASES.values(), ids=CASES.keys())
def test_an_invalid_configuration_is_one_line_before_training(tmp_path, monkeypatch, capsys, argv, field, allowed):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        main(["--max_iterations=2", "--num_envs=32", *argv] if "--num_envs=64" not in argv else ["--max_iterations=2", *argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"train: error: {field}"), lines[0]
    assert allowed in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # no logs/, no workspace


VALID = {
    "delete a key": ["~agent.params.config.bounds_loss_coef"],
    "set a key either way": ["++agent.params.config.gamma=0.95", "++agent.params.config.brand_new=1"],
    "a number where the YAML wrote an integer": ["agent.params.config.critic_coef=2.5"],
    "a population wider than 1000": ["agent.pbt.enabled=True", "agent.pbt.num_policies=1200", "agent.pbt.policy_idx=1100",
                                     "agent.pbt.min_initialized=2", "agent.pbt.diversify=False"],
}


@pytest.mark.parametrize("argv", VALID.values(), ids=VALID.keys())
def test_valid_edge_cases_are_accepted(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    args, overrides = parse_args(["--num_envs=32", *argv])
    agent_cfg, _, pbt = configure(args, overrides)
    cfg = agent_cfg["params"]["config"]
    if "~agent.params.config.bounds_loss_coef" in argv:
        assert "bounds_loss_coef" not in cfg
    if "++agent.params.config.gamma=0.95" in argv:
        assert cfg["gamma"] == 0.95 and cfg["brand_new"] == 1
    if "agent.params.config.critic_coef=2.5" in argv:
        assert cfg["critic_coef"] == 2.5
    if pbt.enabled:
        assert os.path.basename(Workspace(pbt.workspace_dir, pbt.num_policies).member_dir(1100)) == "1100"
