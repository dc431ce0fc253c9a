"""A whole rsl_rl population as one batched PPO (``agent.pbt.mode=batched``), on the embedded tasks and Isaac Lab's.

The layout of ``agent.pbt.mode=shared`` (one env of ``num_policies x num_envs`` envs, a block per
member, PBT in memory through :class:`~isaaclab_pbt.core.exchange.Exchange`, every member
publishing to the workspace), with one difference: the members are not N runners in N threads
but the N lanes of one :class:`~isaaclab_pbt.rsl_rl.batched_ppo.BatchedPPO`, driven by the one
loop of :meth:`BatchedRunner.learn` in one thread. Only the PBT tick runs a short thread per
member, so the members meet in the exchange as they do in shared mode.

Each member keeps its own run folder (``logs/rsl_rl/<experiment>/<run>_pbt<idx>``) with
``params/``, TensorBoard scalars under rsl_rl's names and ``model_<it>.pt`` checkpoints in rsl_rl's
layout, so Isaac Lab's rsl_rl ``play.py`` and ``OnPolicyRunner.load`` read them.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import time
from itertools import chain
from typing import Any, BinaryIO, Callable, Mapping, Optional, Sequence

import torch

from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..shared.lanes import InPlaceLane, first_difference, tick
from ..shared.lockstep import Blocks
from . import learner as rsl_learner
from . import state
from .batched_ppo import PER_LANE, BatchedPPO

log = logging.getLogger("isaaclab_pbt")

PREFIX = rsl_learner.PREFIX


def is_live(key: str) -> bool:
    """True for the keys a lane holds per member (:data:`~.batched_ppo.PER_LANE`); ``num_mini_batches`` shapes every lane's batch."""
    return key.startswith(PREFIX) and key[len(PREFIX):] in PER_LANE


def check_batchable(cfgs: Sequence[dict]) -> None:
    """Refuse, in one line, members that cannot be lanes of one batched PPO.

    Their agent configs must be equal apart from the seed, the PBT block and the per-lane
    hyperparameters, with rsl_rl's feed-forward ``MLPModel``, a Gaussian head, Adam, and no RND or
    symmetry extension.
    """
    def structure(cfg: dict) -> dict:
        cfg = {k: v for k, v in cfg.items() if k not in ("seed", "pbt")}
        cfg["algorithm"] = {k: v for k, v in cfg["algorithm"].items() if k not in PER_LANE}
        return cfg

    first = structure(cfgs[0])
    for idx, cfg in enumerate(cfgs[1:], 1):
        where = first_difference(first, structure(cfg), "agent")
        if where:
            raise UsageError(f"{where}: member {idx:03d} differs from member 000, and with agent.pbt.mode=batched only "
                             f"{', '.join(PREFIX + k for k in PER_LANE)} may differ between members")
    cfg = cfgs[0]
    alg = cfg["algorithm"]
    checks = {
        "agent.algorithm.class_name": (str(alg.get("class_name", "PPO")).rsplit(":", 1)[-1], ("PPO",)),
        "agent.algorithm.optimizer": (alg.get("optimizer", "adam"), ("adam",)),
        "agent.actor.class_name": (str(cfg["actor"].get("class_name")).rsplit(":", 1)[-1], ("MLPModel",)),
        "agent.critic.class_name": (str(cfg["critic"].get("class_name")).rsplit(":", 1)[-1], ("MLPModel",)),
        "agent.actor.distribution_cfg.class_name": (
            str((cfg["actor"].get("distribution_cfg") or {}).get("class_name")).rsplit(":", 1)[-1], ("GaussianDistribution",)),
    }
    for field, (value, allowed) in checks.items():
        if value not in allowed:
            raise UsageError(f"{field}: agent.pbt.mode=batched trains {', '.join(allowed)}, got '{value}'; "
                             "use agent.pbt.mode=shared for other models")
    for extension in ("rnd_cfg", "symmetry_cfg"):
        if alg.get(extension):
            raise UsageError(f"agent.algorithm.{extension}: agent.pbt.mode=batched has no {extension.split('_')[0]} "
                             "extension; drop it or use agent.pbt.mode=shared")


def observation_group(obs_groups: dict, observations: Mapping[str, torch.Tensor]) -> str:
    """The one observation group that actor and critic both read, as rsl_rl resolves ``obs_groups``; refused in one line otherwise.

    The batched PPO keeps one observation tensor per step for both networks (an embedded task has
    one group, ``policy``).
    """
    from rsl_rl.utils import resolve_obs_groups
    from tensordict import TensorDict

    shapes = {k: v[:1] for k, v in observations.items()}
    groups = resolve_obs_groups(TensorDict(shapes, batch_size=[1]), copy.deepcopy(obs_groups), ["actor", "critic"])
    if not (groups["actor"] == groups["critic"] and len(groups["actor"]) == 1):
        raise UsageError(f"agent.obs_groups: agent.pbt.mode=batched feeds actor and critic one and the same observation "
                         f"group, got actor {groups['actor']} and critic {groups['critic']}; use agent.pbt.mode=shared")
    return groups["actor"][0]


def build_ppo(cfgs: Sequence[dict], obs_dim: int, num_actions: int, envs: int, device: str, group: str = "policy") -> BatchedPPO:
    """One rsl_rl ``MLPModel`` actor and critic per member, each from the member's own seed, stacked into a :class:`BatchedPPO`.

    ``group``: the observation group both networks read (:func:`observation_group`).
    """
    from rsl_rl.algorithms import PPO
    from rsl_rl.utils import resolve_class, resolve_optimizer
    from tensordict import TensorDict

    obs = TensorDict({group: torch.zeros(envs, obs_dim, device=device)}, batch_size=[envs])
    groups = {"actor": [group], "critic": [group]}  # the same for all
    actors, critics = [], []
    for cfg in cfgs:
        torch.manual_seed(int(cfg["seed"]))
        actor_class, actor_cfg = resolve_class(cfg["actor"])
        critic_class, critic_cfg = resolve_class(cfg["critic"])
        actors.append(actor_class(obs, groups, "actor", num_actions, **actor_cfg).to(device))
        critics.append(critic_class(obs, groups, "critic", 1, **critic_cfg).to(device))
    defaults = {k: p.default for k, p in inspect.signature(PPO).parameters.items()}
    algorithm = {**defaults, **cfgs[0]["algorithm"]}
    if algorithm["desired_kl"] is None:  # rsl_rl skips the adaptive schedule without a KL target
        algorithm["schedule"] = "fixed"
    hyperparameters = {k: [({**defaults, **c["algorithm"]}[k] or 0.0) for c in cfgs] for k in PER_LANE}
    group = resolve_optimizer(algorithm["optimizer"])(chain(actors[0].parameters(), critics[0].parameters()),
                                                      lr=float(hyperparameters["learning_rate"][0]))
    return BatchedPPO(actors, critics, algorithm, hyperparameters, envs, int(cfgs[0]["num_steps_per_env"]),
                      group.state_dict()["param_groups"][0])


class LaneLearner(InPlaceLane):
    """Lane ``idx`` of a :class:`BatchedRunner` as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

    Its hyperparameters are the lane's entries of the batched PPO's per-lane tensors, and its state
    is the lane's slice in rsl_rl's checkpoint layout, plus the block's curriculum.
    """

    library = "rsl_rl"

    def __init__(self, runner: BatchedRunner, idx: int, run_dir: str):
        self.runner, self.idx, self.run_dir = runner, idx, run_dir
        self.member: Optional[Any] = None

    def iteration_frames(self) -> int:
        return self.runner.ppo.steps * self.runner.ppo.envs

    def frames(self) -> int:
        return self.runner.done_iterations * self.iteration_frames()

    def read(self, key: str, config_value: Any) -> Any:
        if not is_live(key):
            return config_value
        name = key[len(PREFIX):]
        value = float(self.runner.ppo.hp[name][self.idx])
        return int(round(value)) if name in rsl_learner.INTEGERS else value

    def is_live(self, key: str) -> bool:
        return is_live(key)

    def write(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if is_live(key):
                name = key[len(PREFIX):]
                self.runner.ppo.hp[name][self.idx] = int(round(value)) if name in rsl_learner.INTEGERS else float(value)

    def snapshot(self) -> dict:
        return {**self.runner.ppo.lane_state(self.idx), "iter": self.runner.done_iterations, "infos": None,
                "env_state": self.runner.blocks.get_block_state(self.idx)}

    def save(self, training_state: dict, f: BinaryIO) -> None:
        torch.save(training_state, f)

    def load(self, source: str | BinaryIO) -> dict:
        return torch.load(source, map_location="cpu", weights_only=True)

    def misfit(self, training_state: Any) -> Optional[str]:
        return state.misfit_for(self.runner.ppo.lane_state(self.idx), training_state)

    def load_into(self, training_state: dict) -> None:
        self.runner.ppo.set_lane(self.idx, training_state)
        self.runner.blocks.set_block_state(self.idx, training_state.get("env_state"))

    def digest(self, training_state: dict) -> str:
        return state.digest(training_state)

    def budget_spent(self) -> bool:
        return self.runner.done_iterations >= self.runner.max_iterations

    def scalar(self, name: str, value: float, frame: int) -> None:
        writer = self.runner.writers[self.idx]
        if writer is not None:
            writer.add_scalar(name, value, frame)


class BatchedRunner:
    """The rollout and update loop of a batched population, rsl_rl's ``OnPolicyRunner.learn`` for all members at once.

    Args:
        blocks: the env, one block of ``envs`` envs per member.
        ppo: the members' batched PPO.
        cfg: member 000's agent config (``max_iterations``, ``save_interval``, ``check_for_nan``, ``logger``).
        run_dirs: each member's run folder.
        abort: releases members waiting in the exchange when one fails.
    """

    def __init__(self, blocks: Blocks, ppo: BatchedPPO, cfg: dict, run_dirs: Sequence[str], abort: Callable[[], None]):
        self.blocks, self.ppo, self.run_dirs, self.abort = blocks, ppo, list(run_dirs), abort
        self.max_iterations = int(cfg["max_iterations"])
        self.save_interval = int(cfg.get("save_interval", 50))
        self.check_for_nan = bool(cfg.get("check_for_nan", True))
        self.done_iterations = 0
        self.writers: list[Any] = [None] * len(self.run_dirs)
        if cfg.get("logger", "tensorboard") == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writers = [SummaryWriter(log_dir=d, flush_secs=10) for d in self.run_dirs]

    def learn(self, members: Sequence[Any]) -> None:
        """Train every lane to ``max_iterations``: roll out all blocks together, update all lanes at once, tick every member."""
        env, ppo, lanes, envs = self.blocks.env, self.ppo, self.ppo.lanes, self.ppo.envs
        obs = env.reset().view(lanes, envs, -1)
        episode_return = torch.zeros(lanes, envs, device=ppo.device)
        episode_length = torch.zeros_like(episode_return)
        for it in range(self.done_iterations, self.max_iterations):
            start = time.perf_counter()
            stats = {k: torch.zeros(lanes, device=ppo.device) for k in ("episodes", "return", "length")}
            logs: dict[str, torch.Tensor] = {}
            with torch.no_grad():
                for _ in range(ppo.steps):
                    actions = ppo.act(obs)
                    next_obs, reward, done, infos = env.step(actions.reshape(lanes * envs, -1))
                    if self.check_for_nan and not (bool(torch.isfinite(next_obs).all()) and bool(torch.isfinite(reward).all())):
                        raise RuntimeError(f"{type(env).__name__} returned NaN or inf observations or rewards at iteration {it}")
                    obs, reward, done = next_obs.view(lanes, envs, -1), reward.view(lanes, envs), done.view(lanes, envs)
                    time_outs = infos.get("time_outs")
                    ppo.process_env_step(reward, done, None if time_outs is None else time_outs.view(lanes, envs))
                    for idx, member in enumerate(members):
                        member.observe(self.blocks.restrict(infos, idx))
                    for key, value in infos.get("episode", {}).items():  # one value per block
                        logs[key] = logs.get(key, 0.0) + torch.as_tensor(value, device=ppo.device).float().expand(lanes)
                    episode_return += reward
                    episode_length += 1
                    ended = done.float()
                    stats["episodes"] += ended.sum(dim=1)
                    stats["return"] += (episode_return * ended).sum(dim=1)
                    stats["length"] += (episode_length * ended).sum(dim=1)
                    episode_return *= 1.0 - ended
                    episode_length *= 1.0 - ended
                ppo.compute_returns(obs)
            collected = time.perf_counter()
            losses = ppo.update()
            self.done_iterations = it + 1
            self._log(it, start, collected, losses, stats, {k: v / ppo.steps for k, v in logs.items()})
            tick(members, self.abort)
            if it % self.save_interval == 0:
                self._save(it)
        self._save(self.done_iterations - 1)
        for writer in self.writers:
            if writer is not None:
                writer.close()

    def _save(self, it: int) -> None:
        """``<run>/model_<it>.pt`` for every member, rsl_rl's name and layout."""
        for idx, folder in enumerate(self.run_dirs):
            torch.save({**self.ppo.lane_state(idx), "iter": self.done_iterations, "infos": None},
                       os.path.join(folder, f"model_{it}.pt"))

    def _log(self, it: int, start: float, collected: float, losses: dict, stats: dict, logs: dict) -> None:
        """TensorBoard scalars under rsl_rl's names for each member, and one console line for the population."""
        now, ppo = time.perf_counter(), self.ppo
        frames = ppo.steps * ppo.envs
        episodes = stats["episodes"].clamp(min=1)
        mean_return, mean_length = stats["return"] / episodes, stats["length"] / episodes
        for idx, writer in enumerate(self.writers):
            if writer is None:
                continue
            scalars = {"Loss/value_function": losses["value"][idx], "Loss/surrogate": losses["surrogate"][idx],
                       "Loss/entropy": losses["entropy"][idx], "Loss/learning_rate": ppo.hp["learning_rate"][idx],
                       "Policy/mean_std": ppo.actor.std()[idx].detach().mean(), "Perf/total_fps": frames * ppo.lanes / (now - start),
                       "Perf/collection_time": collected - start, "Perf/learning_time": now - collected,
                       **{f"Episode/{k}": v[idx] for k, v in logs.items()}}
            if stats["episodes"][idx] > 0:
                scalars.update({"Train/mean_reward": mean_return[idx], "Train/mean_episode_length": mean_length[idx]})
            for name, value in scalars.items():
                writer.add_scalar(name, float(value), it)
        best = int(mean_return.argmax())
        log.info("batched PPO iteration %d/%d: %d members, %.0f frames/s (collection %.2f s, learning %.2f s), "
                 "mean reward %.3f, best member %03d %.3f", it + 1, self.max_iterations, ppo.lanes,
                 frames * ppo.lanes / (now - start), collected - start, now - collected,
                 float(mean_return.mean()), best, float(mean_return[best]))


def train_batched(args: Any, agent_cfg: dict, pbt: PbtCfg, command: Optional[list[str]],
                  configure_member: Optional[Callable[[int, dict], None]] = None, env: Any = None,
                  env_cfg: Any = None) -> list[LaneLearner]:
    """Train the whole population as one batched PPO in this process; returns the members' learners.

    ``env``: the env of all blocks (an Isaac Lab env seen through
    :class:`~.isaaclab_env.SharedIsaacLabVecEnv`, ``env_cfg`` its config); by default the embedded
    task. ``configure_member(idx, member_agent_cfg)`` may change a member's own copy of the agent
    config first (a Python hook, as for ``agent.pbt.mode=shared``); only per-lane values may differ.
    """
    from ..core.member import Member
    from ..shared.population import member_config, set_up
    from ..tasks import make_task
    from .runner import start_run

    n, per, seed = pbt.num_policies, int(agent_cfg["num_envs"]), int(agent_cfg.get("seed", 42))
    device = str(agent_cfg.get("device", "cpu"))
    mini_batches = PREFIX + "num_mini_batches"
    if mini_batches in pbt.mutation:
        raise UsageError(f"agent.pbt.mutation.{mini_batches}: with agent.pbt.mode=batched every member's batch is split "
                         "the same way; drop it from the whitelist or use agent.pbt.mode=shared")

    def embedded() -> Any:
        return make_task(args.task, n * per, device=device, seed=seed, num_blocks=n, **agent_cfg["env"])

    def env_of(cfg: dict) -> Any:
        return cfg["env"] if env is None else env_cfg

    blocks, exchange, restore = set_up(pbt, args.checkpoint, is_live, embedded if env is None else lambda: env, split=Blocks)
    configs = [member_config(agent_cfg, idx, seed, "seed", env_of, configure_member, fresh=not restore) for idx in range(n)]
    cfgs = [cfg for cfg, _ in configs]
    check_batchable(cfgs)
    threads = int(agent_cfg.get("torch_threads", 1))
    if threads > 0:  # the population's share of the CPU: what its members would have had as processes
        torch.set_num_threads(max(1, min(threads * n, os.cpu_count() or 1)))
    group = "policy" if env is None else env.select(observation_group(cfgs[0].get("obs_groups") or {}, env.reset()))
    task = blocks.env
    ppo = build_ppo(cfgs, int(task.observation_space.shape[0]), int(task.action_space.shape[0]), per, device, group)
    folders = [start_run(args, cfg, member_pbt, env_of(cfg)) for cfg, member_pbt in configs]
    runner = BatchedRunner(blocks, ppo, cfgs[0], folders, exchange.abort)
    learners = [LaneLearner(runner, idx, folders[idx]) for idx in range(n)]
    for idx, path in sorted(restore.items()):
        loaded = learners[idx].load(path)
        problem = learners[idx].misfit(loaded)
        if problem:
            raise UsageError(f"--checkpoint: {path} does not fit this agent: {problem}")
        learners[idx].load_into(loaded)
        runner.done_iterations = int(loaded.get("iter") or 0)  # the common interval: the same for every member
        log.info("member %03d resumes from %s", idx, path)
    log.info("batched population: %d members x %d envs of %s in one env, one PPO update for all", n, per, args.task)
    members = [Member(member_pbt, learners[idx], member_pbt.start_values(cfg, env_of(cfg)), seed + idx, argv=None,
                      exchange=exchange, resume=bool(restore)) for idx, (cfg, member_pbt) in enumerate(configs)]
    for learner, member in zip(learners, members):
        learner.member = member
    try:
        runner.learn(members)
    finally:
        for member in members:
            member.finish()
    return learners
