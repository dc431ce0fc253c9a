import math
import subprocess
import sys

import pytest
import yaml

from isaaclab_pbt.core.config import PbtCfg, PbtConfigError

from .conftest import TRAIN, child_env

SPEC_BLOCK = """
pbt:
  enabled: True
  policy_idx: 0
  num_policies: 8
  directory: .
  workspace: "pbt_workspace"
  objective: episode.Curriculum/difficulty_level
  interval_steps: 50000000
  threshold_std: 0.1
  threshold_abs: 0.025
  mutation_rate: 0.25
  change_range: [1.1, 2.0]
  mutation:
    agent.params.config.learning_rate: "mutate_float"
    agent.params.config.grad_norm: "mutate_float"
    agent.params.config.entropy_coef: "mutate_float"
    agent.params.config.critic_coef: "mutate_float"
    agent.params.config.bounds_loss_coef: "mutate_float"
    agent.params.config.kl_threshold: "mutate_float"
    agent.params.config.gamma: "mutate_discount"
    agent.params.config.tau: "mutate_discount"
"""

AGENT = {
    "params": {"config": {"learning_rate": 3e-4, "grad_norm": 1.0, "entropy_coef": 0.0, "critic_coef": 4.0,
                          "bounds_loss_coef": 1e-4, "kl_threshold": 0.01, "gamma": 0.99, "tau": 0.95,
                          "name": "lift", "mini_epochs": 5}},
}


def test_defaults_are_the_spec_example():
    spec = yaml.safe_load(SPEC_BLOCK)["pbt"]
    cfg = PbtCfg()
    for key, value in spec.items():
        expected = tuple(value) if key == "change_range" else value
        assert getattr(cfg, key) == (False if key == "enabled" else expected), key


def test_spec_example_block_is_accepted_with_its_agent_config():
    cfg = PbtCfg.from_agent_cfg({**AGENT, **yaml.safe_load(SPEC_BLOCK)})
    assert cfg.enabled and cfg.num_policies == 8 and cfg.change_range == (1.1, 2.0)
    assert cfg.workspace_dir.endswith("pbt_workspace")


def test_every_field_has_a_docstring():
    import ast
    import inspect

    from isaaclab_pbt.core import config

    tree = ast.parse(inspect.getsource(config.PbtCfg))
    body = tree.body[0].body
    documented = {
        stmt.target.id
        for stmt, nxt in zip(body, body[1:], strict=False)
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
    }
    import dataclasses
    assert documented == {f.name for f in dataclasses.fields(PbtCfg)}


@pytest.mark.parametrize(
    "block, message",
    [
        ({"polcy_idx": 1}, "agent.pbt.polcy_idx: unknown PBT setting (did you mean 'policy_idx'?)"),
        ({"num_policies": "8"}, "agent.pbt.num_policies: must be an integer, got '8'"),
        ({"enabled": "yes"}, "agent.pbt.enabled: must be True or False"),
        ({"interval_steps": True}, "agent.pbt.interval_steps: must be an integer"),
        ({"num_policies": 4, "policy_idx": 4}, "agent.pbt.policy_idx: must be in [0, 4)"),
        ({"policy_idx": -1}, "agent.pbt.policy_idx: must be in [0, 8)"),
        ({"change_range": [0.9, 2.0]}, "agent.pbt.change_range: must be [min, max] with 1 <= min <= max"),
        ({"change_range": [2.0, 1.5]}, "agent.pbt.change_range: must be [min, max] with 1 <= min <= max"),
        ({"change_range": [1.5]}, "agent.pbt.change_range: must be a pair"),
        ({"mutation_rate": 1.5}, "agent.pbt.mutation_rate: must be in [0, 1], got 1.5"),
        ({"threshold_std": -0.1}, "agent.pbt.threshold_std: must be a finite number >= 0"),
        ({"mutation": {"agent.params.config.gamma": "mutate_gauss"}},
         "agent.pbt.mutation.agent.params.config.gamma: unknown mutation function 'mutate_gauss'; "
         "allowed: mutate_float, mutate_discount, mutate_int, mutate_clip, mutate_choice"),
        ({"mutation": {"params.config.gamma": "mutate_discount"}}, "keys must be config paths starting with 'agent.' or 'env.'"),
        ({"apply": "hot"}, "agent.pbt.apply: must be one of auto, in-place, restart, got 'hot'"),
        ({"objective_reduce": "median"}, "agent.pbt.objective_reduce: must be one of mean, max, last"),
        ({"keep_checkpoints": 1}, "agent.pbt.keep_checkpoints: must be at least 2"),
        ({"min_initialized": 0}, "agent.pbt.min_initialized: must be in [1, num_policies=8]"),
            ({"min_initialized": 5, "num_policies": 4}, "agent.pbt.min_initialized: must be in [1, num_policies=4] (more could never report), got 5"),
            ({"workspace": "../x"}, "agent.pbt.workspace: must be the name of one folder inside agent.pbt.directory"),
            ({"workspace": "."}, "agent.pbt.workspace: must be the name of one folder"),
            ({"workspace": "/abs/ws"}, "agent.pbt.workspace: must be the name of one folder"),
        ({"bounds": {"agent.params.config.e_clip": [0.1, 0.3]}},
         "agent.pbt.bounds.agent.params.config.e_clip: bounds given for a key that is not in agent.pbt.mutation"),
        ({"bounds": {"agent.params.config.gamma": [0.99, 0.9]}}, "must be [low, high] with low <= high"),
        ({"objective": "episode..adr"}, "agent.pbt.objective: must be a dotted path"),
    ],
)
def test_bad_blocks_fail_with_one_line_naming_the_field(block, message):
    with pytest.raises(PbtConfigError) as err:
        PbtCfg.from_dict(block)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_whitelisted_key_missing_from_agent_config_suggests_the_close_one():
    block = {"enabled": True, "mutation": {"agent.params.config.learning_rat": "mutate_float"}}
    with pytest.raises(PbtConfigError, match=r"does not exist in the agent config; did you mean 'agent.params.config.learning_rate'\?"):
        PbtCfg.from_agent_cfg({**AGENT, "pbt": block})


def test_numbers_that_yaml_read_as_text_are_accepted_as_numbers():
    agent = yaml.safe_load("params:\n  config:\n    learning_rate: 3e-4\n    gamma: 0.99\n")
    assert agent["params"]["config"]["learning_rate"] == "3e-4"  # YAML 1.1 without a dot
    block = {"enabled": True, "mutation": {"agent.params.config.learning_rate": "mutate_float"}}
    PbtCfg.from_agent_cfg({**agent, "pbt": block})
    assert agent["params"]["config"]["learning_rate"] == 3e-4


def test_whitelisted_key_must_be_numeric():
    block = {"enabled": True, "mutation": {"agent.params.config.name": "mutate_float"}}
    with pytest.raises(PbtConfigError, match="only numbers can be mutated"):
        PbtCfg.from_agent_cfg({**AGENT, "pbt": block})


def test_bounds_default_per_function_and_user_override():
    cfg = PbtCfg.from_dict({"bounds": {"agent.params.config.gamma": [0.9, 0.995]}})
    assert cfg.bounds_for("agent.params.config.gamma") == (0.9, 0.995)
    assert cfg.bounds_for("agent.params.config.tau") == (0.0, 0.9999)


def test_train_script_rejects_bad_pbt_block_at_start_up(tmp_path):
    proc = subprocess.run(
        [sys.executable, TRAIN, "agent.pbt.enabled=True", "agent.pbt.mutation_rate=2"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["train: error: agent.pbt.mutation_rate: must be in [0, 1], got 2.0"]
    assert not (tmp_path / "logs").exists()  # failed before creating anything


def test_open_ended_keys_are_bounded_by_their_rules_unless_the_user_sets_bounds():
    cfg = PbtCfg.from_dict({"mutation": {"agent.params.config.learning_rate": "mutate_float",
                                         "agent.params.config.mini_epochs": "mutate_int",
                                         "agent.algorithm.num_learning_epochs": "mutate_int",
                                         "env.rewards.push.weight": "mutate_float"},
                            "bounds": {"agent.params.config.mini_epochs": [2, 8]}})
    assert cfg.bounds_for("agent.params.config.learning_rate") == (0.0, 1.0)  # a planted 1e30 is clipped to 1
    assert cfg.bounds_for("agent.params.config.mini_epochs") == (2, 8)  # the user's own bounds win
    assert cfg.bounds_for("agent.algorithm.num_learning_epochs") == (1.0, 100)
    assert cfg.bounds_for("env.rewards.push.weight") == (0.0, math.inf)  # no rule: the function's default
