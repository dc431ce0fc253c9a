import pytest

from isaaclab_pbt.core.agent_config import OverrideError, apply_overrides, get_flag, get_override, parse_value, restart_argv
from isaaclab_pbt.core.errors import UsageError
from isaaclab_pbt.rl_games.train import configure, parse_args


def _cfg():
    return {"env": {}, "agent": {"params": {"config": {"learning_rate": 3e-4, "gamma": 0.99}},
                                 "pbt": {"enabled": False, "mutation": {"agent.params.config.gamma": "mutate_discount"}}}}


def test_values_are_parsed_like_hydra():
    assert parse_value("1e-8") == 1e-8 and parse_value("True") is True
    assert parse_value("[1.1,2.0]") == [1.1, 2.0] and parse_value("episode.Curriculum/adr") == "episode.Curriculum/adr"


def test_overrides_set_existing_keys_and_plus_adds():
    c = _cfg()
    apply_overrides(c, ["agent.pbt.enabled=True", "agent.params.config.learning_rate=1e-3", "+agent.params.config.new.deep=4",
                        "agent.pbt.mutation.agent.params.config.gamma=mutate_float",
                        "+agent.pbt.mutation.agent.params.config.tau=mutate_discount", "+env.max_level=10"])
    a = c["agent"]
    assert a["pbt"]["enabled"] is True and a["params"]["config"]["learning_rate"] == 1e-3
    assert a["params"]["config"]["new"] == {"deep": 4}
    assert a["pbt"]["mutation"] == {"agent.params.config.gamma": "mutate_float", "agent.params.config.tau": "mutate_discount"}
    assert c["env"] == {"max_level": 10}


def test_typo_fails_with_the_close_key():
    with pytest.raises(OverrideError, match=r"did you mean 'agent.params.config.learning_rate'\?.*'\+'"):
        apply_overrides(_cfg(), ["agent.params.config.learning_rat=1e-3"])
    with pytest.raises(OverrideError, match="keys start with one of env., agent."):
        apply_overrides(_cfg(), ["policy.lr=1"])


def test_cli_flags_and_overrides_reach_the_configs():
    args, ov = parse_args(["--num_envs=64", "--seed", "7", "--max_iterations=5", "--device=cpu",
                           "agent.pbt.enabled=True", "agent.pbt.policy_idx=2", "agent.pbt.num_policies=3"])
    agent, env, pbt = configure(args, ov)
    cfg = agent["params"]["config"]
    assert (cfg["num_actors"], agent["params"]["seed"], cfg["max_epochs"], cfg["device"], env["device"]) == (64, 7, 5, "cpu", "cpu")
    assert pbt.enabled and pbt.policy_idx == 2 and pbt.objective == "episode.Curriculum/adr"


def test_unknown_flag_is_an_error():
    with pytest.raises(UsageError, match="unrecognized arguments: --num_env=4"):
        parse_args(["--num_env=4"])


def test_restart_argv_keeps_every_user_flag():
    argv = ["scripts/train.py", "--task=PointReach-v0", "--num_envs", "64", "--seed", "3", "--device=cpu",
            "--max_iterations=50", "--checkpoint=old.pth", "agent.pbt.enabled=True", "agent.params.config.learning_rate=1e-8",
            "+env.max_level=30"]
    out = restart_argv(argv, "/runs/nn/pbt.pth", 99, {"agent.params.config.learning_rate": 2.5e-3, "agent.params.config.mini_epochs": 3})
    assert out[:5] == ["scripts/train.py", "--task=PointReach-v0", "--num_envs", "64", "--device=cpu"]
    for token in ("--max_iterations=50", "agent.pbt.enabled=True", "+env.max_level=30", "--checkpoint=/runs/nn/pbt.pth",
                  "--seed=99", "agent.params.config.learning_rate=0.0025", "agent.params.config.mini_epochs=3"):
        assert out.count(token) == 1, token
    assert "old.pth" not in " ".join(out) and "1e-08" not in " ".join(out) and "3" not in out


def test_reading_flags_and_overrides_takes_the_value_argparse_and_hydra_keep():
    argv = ["--seed=1", "--num_envs", "64", "--seed", "2", "agent.pbt.directory=a", "+agent.pbt.directory=b", "agent.pbt.workspace"]
    assert get_flag(argv, "--seed") == "2" and get_flag(argv, "--num_envs") == "64" and get_flag(argv, "--device") is None
    assert get_override(argv, "agent.pbt.directory") == "b"
    assert get_override(argv, "agent.pbt.workspace") is None  # a bare key is not an override


def test_env_settings_have_one_dict_whichever_path_names_them():
    from isaaclab_pbt.rl_games.train import configure, parse_args

    args, ov = parse_args(["--task=PuckPush-v0", "env.rewards.push.weight=2.5", "+agent.params.config.env_config.max_level=40"])
    agent_cfg, env_cfg, _ = configure(args, ov)
    assert env_cfg is agent_cfg["params"]["config"]["env_config"]
    assert env_cfg["rewards"]["push"]["weight"] == 2.5 and env_cfg["max_level"] == 40


def test_hydra_tokens_survive_a_restart_command_line():
    argv = ["--seed=1", "~agent.params.config.bounds_loss_coef", "++agent.params.config.gamma=0.95", "agent.pbt.enabled=True"]
    out = restart_argv(argv, "/ck.pth", 7, {"agent.params.config.gamma": 0.97, "agent.params.config.learning_rate": 1e-4})
    assert "~agent.params.config.bounds_loss_coef" in out  # the user's deletion is kept
    assert "++agent.params.config.gamma=0.95" not in out and "agent.params.config.gamma=0.97" in out
    args, overrides = parse_args(out)
    agent, _, _ = configure(args, overrides)
    cfg = agent["params"]["config"]
    assert "bounds_loss_coef" not in cfg and cfg["gamma"] == 0.97 and cfg["learning_rate"] == 1e-4
    assert get_override(out, "agent.params.config.bounds_loss_coef") is None
