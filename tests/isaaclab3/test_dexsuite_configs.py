"""Our Dexsuite Kuka-Allegro PBT configs against Isaac Lab 3.0's real task configs (2.3 ids registered the 2.3 way).

The Kuka-Allegro robot asset is not available offline, so the env itself is not built; the env and
agent configs are resolved for real and checked against each other.
"""

import subprocess
import sys

import gymnasium as gym
import pytest

from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.objective import lookup, to_float
from isaaclab_pbt.isaaclab import registration
from isaaclab_pbt.rl_games.train import apply_settings, parse_args

IDS_3 = {"Isaac-Lift-KukaAllegro": "lift", "Isaac-Reorient-KukaAllegro": "reorient"}
ENV_CFG_3 = {
    "lift": "isaaclab_tasks.core.lift.config.kuka_allegro.kuka_allegro_env_cfg:KukaAllegroLiftEnvCfg",
    "reorient": "isaaclab_tasks.core.lift.config.kuka_allegro.kuka_allegro_env_cfg:KukaAllegroReorientEnvCfg",
}
OVERRIDES = ["agent.pbt.enabled=True", "agent.pbt.num_policies=8", "agent.pbt.policy_idx=3", "agent.pbt.directory=/shared",
             "agent.pbt.workspace=ws"]


def _check(env_cfg, agent_cfg, kind):
    args, agent_tokens = parse_args(OVERRIDES)
    pbt = apply_settings(args, agent_tokens, agent_cfg, None)
    assert (pbt.enabled, pbt.num_policies, pbt.policy_idx, pbt.workspace_dir) == (True, 8, 3, "/shared/ws")
    assert agent_cfg["params"]["config"]["name"] == f"dexsuite_kuka_allegro_{kind}"
    # the objective names a curriculum term the env really has, logged by Isaac Lab as episode["Curriculum/<term>"]
    terms = {name for name in vars(env_cfg.curriculum) if not name.startswith("_")}
    logged = {"episode": {f"Curriculum/{name}": 0.0 for name in terms}}
    assert lookup(logged, pbt.objective) == 0.0 and pbt.objective == "episode.Curriculum/adr"
    assert to_float(lookup(logged, PbtCfg().objective)) is None  # the spec's example key is not logged by Dexsuite
    func = env_cfg.curriculum.adr.func  # the term whose state travels with the weights
    assert callable(getattr(func, "get_state", None)) and callable(getattr(func, "set_state", None))
    # the PPO values of Isaac Lab 2.3's Dexsuite config
    cfg = agent_cfg["params"]["config"]
    assert (cfg["horizon_length"], cfg["minibatch_size"], cfg["mini_epochs"], cfg["lr_schedule"]) == (36, 36864, 5, "adaptive")
    assert agent_cfg["params"]["network"]["mlp"]["units"] == [512, 256, 128]


@pytest.mark.parametrize("task", sorted(IDS_3))
@pytest.mark.parametrize("entry", ["rl_games_cfg_entry_point", "rl_games_pbt_cfg_entry_point"])
def test_isaaclab3_ids_resolve_with_our_config(task, entry):
    from isaaclab_tasks.utils import resolve_task_config

    registration.register()
    env_cfg, agent_cfg = resolve_task_config(task, entry, overrides=["env.scene.num_envs=64"])
    assert env_cfg.scene.num_envs == 64
    _check(env_cfg, agent_cfg, IDS_3[task])


def test_isaaclab23_ids_registered_the_23_way_keep_their_own_rl_games_config():
    from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

    upstream = "isaaclab_tasks.manager_based.manipulation.dexsuite.config.kuka_allegro.agents:rl_games_ppo_cfg.yaml"
    ids = {"Isaac-Dexsuite-Kuka-Allegro-Lift-v0": "lift", "Isaac-Dexsuite-Kuka-Allegro-Reorient-Play-v0": "reorient"}
    for task, kind in ids.items():
        gym.register(id=task, entry_point="isaaclab.envs:ManagerBasedRLEnv", disable_env_checker=True,
                     kwargs={"env_cfg_entry_point": ENV_CFG_3[kind], "rl_games_cfg_entry_point": upstream})
    try:
        assert set(ids) <= set(registration.register())
        for task, kind in ids.items():
            assert gym.registry[task].kwargs["rl_games_cfg_entry_point"] == upstream  # not replaced
            agent_cfg = load_cfg_from_registry(task, registration.PBT_ENTRY_POINT)
            env_cfg = load_cfg_from_registry(task, "env_cfg_entry_point")
            _check(env_cfg, agent_cfg, kind)
    finally:
        for task in ids:
            gym.registry.pop(task, None)


def test_isaaclab_cli_discovers_our_configs_through_the_entry_point(il_env):
    out = subprocess.run([sys.executable, "-m", "isaaclab", "list_envs", "--keyword", "KukaAllegro"],
                         capture_output=True, text=True, env=il_env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if "Isaac-Lift-KukaAllegro " in line or "Isaac-Reorient-KukaAllegro " in line]
    assert len(rows) == 2 and all("rl_games" in row for row in rows), out.stdout[-3000:]


@pytest.mark.parametrize("task", sorted(IDS_3))
def test_rsl_rl_pbt_config_is_the_tasks_own_rsl_rl_config_with_a_pbt_block(task):
    from isaaclab_tasks.utils import resolve_task_config

    from isaaclab_pbt.rsl_rl import train as rsl_rl_train

    registration.register()
    env_cfg, own = resolve_task_config(task, "rsl_rl_cfg_entry_point", overrides=[])
    _, ours = resolve_task_config(task, registration.RSL_RL_PBT_ENTRY_POINT, overrides=[])
    own, ours = rsl_rl_train.runner_cfg_dict(own), rsl_rl_train.runner_cfg_dict(ours)
    block = ours.pop("pbt")
    assert ours == own  # derived: every PPO, model and runner value is Isaac Lab's
    assert block["workspace"] == f"dexsuite_kuka_allegro_{IDS_3[task]}_pbt" and block["objective"] == "episode.Curriculum/adr"
    assert "mutation" not in block  # the rl_games whitelist is not carried over
    # what scripts/rsl_rl/train.py makes of it: a valid member whose whitelisted keys all exist in the live config
    args, tokens = rsl_rl_train.parse_args([f"--task={task}", *OVERRIDES])
    pbt = rsl_rl_train.settle(args, tokens, {**ours, "pbt": block}, env_cfg)
    assert (pbt.enabled, pbt.num_policies, pbt.policy_idx, pbt.workspace_dir) == (True, 8, 3, "/shared/ws")
    assert own["algorithm"]["schedule"] == "adaptive" and "agent.algorithm.desired_kl" in pbt.mutation
    assert "agent.algorithm.learning_rate" not in pbt.mutation  # the adaptive schedule owns it
    start = pbt.start_values({**ours, "pbt": block}, env_cfg)
    assert start["agent.algorithm.desired_kl"] == own["algorithm"]["desired_kl"]
    assert {"adr"} <= {name for name in vars(env_cfg.curriculum) if not name.startswith("_")}


def test_rsl_rl_refuses_to_mutate_a_learning_rate_the_adaptive_schedule_rewrites():
    from isaaclab_tasks.utils import resolve_task_config

    from isaaclab_pbt.core.errors import UsageError
    from isaaclab_pbt.rsl_rl import train as rsl_rl_train

    registration.register()
    env_cfg, agent = resolve_task_config("Isaac-Lift-KukaAllegro", registration.RSL_RL_PBT_ENTRY_POINT, overrides=[])
    args, tokens = rsl_rl_train.parse_args(["--task=Isaac-Lift-KukaAllegro", *OVERRIDES,
                                            "agent.pbt.mutation={agent.algorithm.learning_rate:mutate_float}"])
    with pytest.raises(UsageError, match=r"agent\.pbt\.mutation\.agent\.algorithm\.learning_rate: the adaptive schedule"):
        rsl_rl_train.settle(args, tokens, rsl_rl_train.runner_cfg_dict(agent), env_cfg)
