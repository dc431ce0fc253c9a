"""A real Isaac Lab env: its curriculum travels with rl_games checkpoints (and so with a donor's weights), and
PBT changes its reward weights while it runs."""

import io

import gymnasium as gym
import torch

from isaaclab_pbt.rl_games import checkpoint


def test_curriculum_terms_with_state_are_saved_and_restored():
    from isaaclab.app import launch_simulation
    from isaaclab.managers import CurriculumTermCfg, ManagerTermBase
    from isaaclab.utils import configclass
    from isaaclab_tasks.utils import resolve_task_config

    from isaaclab_pbt.rl_games.isaaclab_env import register_rl_games_env
    from isaaclab_pbt.rl_games.runner import build_runner

    class Level(ManagerTermBase):
        """A per-env difficulty with Isaac Lab's get_state/set_state hook, like Dexsuite's ADR term."""

        def __init__(self, cfg, env):
            super().__init__(cfg, env)
            self.level = torch.zeros(env.num_envs, device=env.device)

        def get_state(self):
            return self.level

        def set_state(self, state):
            self.level = state.clone().to(self._env.device)

        def __call__(self, env, env_ids):
            return float(self.level.mean())

    @configclass
    class Curriculum:
        level = CurriculumTermCfg(func=Level)

    env_cfg, agent_cfg = resolve_task_config("Isaac-Cartpole", "rl_games_cfg_entry_point", overrides=[])
    env_cfg.scene.num_envs = 8
    env_cfg.sim.device = "cpu"
    env_cfg.curriculum = Curriculum()
    config = agent_cfg["params"]["config"]
    config.update(device="cpu", device_name="cpu", minibatch_size=128, torch_compile=False, print_stats=False,
                  train_dir="/tmp/isaaclab_pbt_curriculum_test", full_experiment_name="run", num_actors=8)
    with launch_simulation(env_cfg, {"device": "cpu"}):
        env = gym.make("Isaac-Cartpole", cfg=env_cfg)
        try:
            register_rl_games_env(env, agent_cfg)
            from rl_games.common.algo_observer import IsaacAlgoObserver

            runner = build_runner(agent_cfg, IsaacAlgoObserver())
            agent = runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params)
            term = env.unwrapped.curriculum_manager.cfg.level.func
            term.level = torch.arange(8, dtype=torch.float32)

            buffer = io.BytesIO()
            checkpoint.save(checkpoint.published_state(agent), buffer)  # what a member publishes
            term.level = torch.zeros(8)
            buffer.seek(0)
            state = torch.load(buffer, weights_only=True)
            assert torch.equal(state["env_state"]["curriculum"]["level"], torch.arange(8, dtype=torch.float32))
            checkpoint.load_into(agent, state)  # what an underperformer does with it
            assert torch.equal(term.level, torch.arange(8, dtype=torch.float32))

            state["env_state"]["curriculum"]["level"] = torch.tensor([5.0, 6.0])  # a donor with 2 envs
            agent.vec_env.set_env_state(state["env_state"])
            assert term.level.shape == (8,) and set(term.level.tolist()) <= {5.0, 6.0}

            # env.rewards.<term>.weight: read from the configclass, set live through the reward manager
            from isaaclab_pbt.core.config import PbtCfg
            from isaaclab_pbt.rl_games import learner as live

            key = "env.rewards.alive.weight"
            pbt = PbtCfg.from_dict({"enabled": True, "mutation": {key: "mutate_float"}})
            start = env_cfg.rewards.alive.weight
            assert pbt.start_values(agent_cfg, env_cfg) == {key: start}
            assert live.is_live(key, agent) and live.read(agent, key, None) == start
            live.write(agent, {key: 3.5 * start})
            manager = env.unwrapped.reward_manager
            assert manager.get_term_cfg("alive").weight == 3.5 * start == live.read(agent, key, None)
            agent.vec_env.reset()
            agent.vec_env.step(torch.zeros(8, 1))
            alive = manager.active_terms.index("alive")
            paid = manager._step_reward[:, alive]  # per-term reward of the last step, weight included
            assert torch.allclose(paid[paid != 0], torch.full_like(paid[paid != 0], 3.5 * start))
            agent.writer.close()
        finally:
            env.close()
