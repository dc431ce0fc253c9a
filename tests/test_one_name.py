"""A hyperparameter has one name from the YAML to the live agent, under every RL library.

The name a user overrides on the command line is the one PBT reads from the config, reads and
writes in the running learner, and writes back on a restarted member's command line, where the
same override parser reads it again.
"""

from __future__ import annotations

import pytest

from isaaclab_pbt.core import agent_config


def _restarted_value(argv: list[str], name: str, value: float, path: str, section: str, library: str):
    """The value a member restarted with ``name=value`` reads from its config, parsed as any command line is."""
    out = agent_config.restart_argv(argv, "restart.pt", 7, {name: value})
    cfg = agent_config.load(path, section, library)
    agent_config.apply_overrides({"agent": cfg}, [t for t in out if agent_config.is_override(t)])
    return agent_config.get_value(agent_config.roots(cfg), name)


def test_rl_games_learning_rate_has_one_name(agent_factory):
    from isaaclab_pbt.rl_games.learner import RlGamesLearner
    from isaaclab_pbt.tasks import EMBEDDED_TASK, EMBEDDED_TASKS

    name = "agent.params.config.learning_rate"
    agent, cfg = agent_factory(f"{name}=0.00123")
    assert agent_config.get_value(agent_config.roots(cfg), name) == 0.00123
    learner = RlGamesLearner(agent)
    assert learner.read(name, None) == 0.00123 == agent.optimizer.param_groups[0]["lr"]
    learner.write({name: 0.0042})
    assert learner.read(name, None) == 0.0042 == agent.optimizer.param_groups[0]["lr"]
    assert _restarted_value([f"{name}=0.00123"], name, 0.0042, EMBEDDED_TASKS[EMBEDDED_TASK], "params", "rl_games") == 0.0042


def test_rsl_rl_learning_rate_has_one_name(tmp_path):
    pytest.importorskip("rsl_rl")
    import torch

    from isaaclab_pbt.rsl_rl.env import make_embedded
    from isaaclab_pbt.rsl_rl.learner import RslRlLearner
    from isaaclab_pbt.rsl_rl.runner import build_runner
    from isaaclab_pbt.rsl_rl.train import AGENTS, configure

    name = "agent.algorithm.learning_rate"
    _, cfg, _ = configure(["--task=PointReach-v0", "--num_envs=8", f"{name}=0.00123"])
    assert agent_config.get_value(agent_config.roots(cfg, cfg["env"]), name) == 0.00123
    torch.manual_seed(0)
    runner = build_runner(cfg, make_embedded("PointReach-v0", 8, cfg["env"], seed=0), None)
    learner = RslRlLearner(runner, 1, str(tmp_path))
    assert learner.read(name, None) == 0.00123 == runner.alg.optimizer.param_groups[0]["lr"]
    learner.write({name: 0.0042})
    assert learner.read(name, None) == 0.0042 == runner.alg.optimizer.param_groups[0]["lr"]
    assert _restarted_value([f"{name}=0.00123"], name, 0.0042, AGENTS["PointReach-v0"], "algorithm", "rsl_rl") == 0.0042


def test_skrl_learning_rate_has_one_name(tmp_path):
    pytest.importorskip("skrl")
    from isaaclab_pbt.skrl.env import make_embedded
    from isaaclab_pbt.skrl.learner import SkrlLearner
    from isaaclab_pbt.skrl.runner import build_runner
    from isaaclab_pbt.skrl.train import AGENTS, configure

    name = "agent.agent.learning_rate"
    _, cfg, _ = configure(["--task=PointReach-v0", "--num_envs=8", f"{name}=0.00123"])
    assert agent_config.get_value(agent_config.roots(cfg, cfg["env"]), name) == 0.00123
    env = make_embedded("PointReach-v0", 8, cfg["env"], seed=0)
    runner = build_runner(cfg, env, str(tmp_path / "run"), 1)
    learner = SkrlLearner(runner.agent, env, 1, str(tmp_path / "run"))
    assert learner.read(name, None) == 0.00123 == runner.agent.optimizer.param_groups[0]["lr"]
    learner.write({name: 0.0042})
    assert learner.read(name, None) == 0.0042 == runner.agent.optimizer.param_groups[0]["lr"]
    assert _restarted_value([f"{name}=0.00123"], name, 0.0042, AGENTS["PointReach-v0"], "agent", "skrl") == 0.0042
