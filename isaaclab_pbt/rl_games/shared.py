"""A whole rl_games population in one process (``agent.pbt.mode=shared``).

One embedded env of ``num_policies x num_actors`` envs is split into blocks
(:class:`~isaaclab_pbt.shared.lockstep.LockstepEnv`); each member is an ordinary rl_games agent
whose vec-env is its block (:class:`BlockEnv`), trained by rl_games' own loop in a thread of its
own. The blocks step together, so every member reaches an interval boundary at the same step;
there the members trade records and states in memory (:class:`~isaaclab_pbt.core.exchange.Exchange`)
and an underperformer loads its donor's state (weights, optimiser, normalisers and the block's
curriculum) straight from the donor's snapshot. Each member still publishes to the workspace and
logs to its own run folder, as a member process would.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Optional

from rl_games.common.ivecenv import IVecEnv

from ..core.config import PbtCfg
from ..shared.lockstep import LockstepEnv
from ..shared.population import member_config, set_up, train_in_threads
from ..tasks import make_task

log = logging.getLogger("isaaclab_pbt")

#: rl_games' names for the block envs of a one-process population.
ENV_NAME, VECENV_TYPE = "isaaclab_pbt_shared", "ISAACLAB_PBT_SHARED"


class BlockEnv(IVecEnv):
    """Block ``idx`` of a :class:`LockstepEnv`, as one rl_games agent's vec-env."""

    def __init__(self, lockstep: LockstepEnv, idx: int):
        self.lockstep, self.idx = lockstep, idx

    def step(self, actions):
        return self.lockstep.step_block(self.idx, actions)

    def reset(self):
        return self.lockstep.observations(self.idx)  # the env resets its envs itself; a learner starts from the current ones

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> dict:
        return self.lockstep.env.get_env_info()

    def get_env_state(self) -> Optional[dict]:
        return self.lockstep.get_block_state(self.idx)

    def set_env_state(self, env_state: Optional[dict]) -> None:
        self.lockstep.set_block_state(self.idx, env_state)


def train_shared(args: Any, agent_cfg: dict, env_cfg: Any, pbt: PbtCfg, command: list[str],
                 configure_member: Optional[Callable[[int, dict], None]] = None, env: Any = None) -> list[Any]:
    """Train the whole population in this process; returns the members' observers (their learners, their members).

    ``env``: the env of all blocks (an Isaac Lab env wrapped by
    :class:`~.isaaclab_env.SharedIsaacLabEnv`); by default the embedded task of the agent config,
    ``num_policies x num_actors`` envs. ``env_cfg`` is its config (the embedded task's dict, or
    Isaac Lab's env config, written to each run folder). ``configure_member(idx, member_agent_cfg)``
    may change a member's own copy of the agent config before its agent is built (a Python hook:
    start one member elsewhere, as a test does).
    """
    from rl_games.common import env_configurations, vecenv

    from .learner import is_live
    from .observer import PbtObserver
    from .runner import build_runner, start_run

    cfg = agent_cfg["params"]["config"]
    n, per, seed = pbt.num_policies, int(cfg["num_actors"]), int(agent_cfg["params"].get("seed", 42))

    def embedded() -> Any:
        settings = {k: v for k, v in env_cfg.items() if k != "device"}
        return make_task(cfg["env_name"], n * per, device=str(cfg.get("device", "cpu")), seed=seed, num_blocks=n, **settings)

    lockstep, exchange, restore = set_up(pbt, args.checkpoint, is_live, embedded if env is None else lambda: env)
    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kwargs: BlockEnv(lockstep, int(kwargs["block"])))
    env_configurations.register(ENV_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": lambda **kwargs: None})
    log.info("one-process population: %d members x %d envs of %s in one env", n, per, args.task)

    observers, runners, restored = [], [], []
    for idx in range(n):
        member_cfg, member_pbt = member_config(agent_cfg, idx, seed, "params.seed", lambda c: env_cfg, configure_member,
                                               fresh=not restore)
        member_cfg["params"]["config"]["full_experiment_name"] = None  # each member its own run folder
        start_run(member_cfg, member_pbt, command, env_cfg)
        mcfg = member_cfg["params"]["config"]
        mcfg["env_name"], mcfg["env_config"] = ENV_NAME, {"block": idx}  # after the dump: the files keep the task's
        observer = PbtObserver(member_pbt, member_cfg, seed + idx, argv=None, env_cfg=env_cfg, exchange=exchange,
                               resume=bool(restore))
        observers.append(observer)
        runners.append(build_runner(member_cfg, observer))
        restored.append(None)
        if restore:
            from .checkpoint import safe_copy

            restored[idx] = safe_copy(restore[idx], os.path.join(mcfg["train_dir"], mcfg["full_experiment_name"], "nn"))
            log.info("member %03d resumes from %s", idx, restore[idx])

    building = threading.Lock()  # torch.jit.script (rl_games' normalisers) is not thread-safe: one agent at a time
    for runner in runners:
        runner.algo_factory.create = _one_at_a_time(runner.algo_factory.create, building)
    train_in_threads([lambda r=r, path=path: r.run({"train": True, "play": False, "checkpoint": path, "sigma": None})
                      for r, path in zip(runners, restored)],
                     [o.flush for o in observers], [lockstep.abort, exchange.abort])
    return observers


def _one_at_a_time(create: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return create(*args, **kwargs)

    return locked
