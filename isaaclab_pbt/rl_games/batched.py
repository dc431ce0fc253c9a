"""A whole rl_games population as one batched PPO (``agent.pbt.mode=batched``), on the embedded tasks and Isaac Lab's.

The layout of ``agent.pbt.mode=shared`` (one env of ``num_policies x num_actors`` envs, a block per
member, PBT in memory through :class:`~isaaclab_pbt.core.exchange.Exchange`, every member
publishing to the workspace), with one difference: the members are not N rl_games agents in N
threads but the N lanes of one :class:`~isaaclab_pbt.rl_games.batched_a2c.BatchedA2C`, driven by
the one loop of :meth:`BatchedRunner.learn` in one thread. Only the PBT tick runs a short thread
per member, so the members meet in the exchange as they do in shared mode.

Each member keeps its own run folder (``logs/rl_games/<name>/<run>_pbt<idx>``) with ``params/``,
TensorBoard scalars under rl_games' names in ``summaries/`` and checkpoints in ``nn/`` under
rl_games' names and in its layout, so rl_games' loader and Isaac Lab's rl_games ``play.py`` read them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, BinaryIO, Callable, Mapping, Optional, Sequence

import torch

from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..shared.lanes import InPlaceLane, first_difference, tick
from ..shared.lockstep import Blocks
from . import checkpoint
from .batched_a2c import PER_LANE, BatchedA2C
from .learner import PREFIX

log = logging.getLogger("isaaclab_pbt")


def is_live(key: str) -> bool:
    """True for the keys a lane holds per member (:data:`~.batched_a2c.PER_LANE`); the minibatch shapes every lane's batch."""
    return key.startswith(PREFIX) and key[len(PREFIX):] in PER_LANE


def check_batchable(cfgs: Sequence[dict]) -> None:
    """Refuse, in one line, members that cannot be lanes of one batched PPO.

    Their agent configs must be equal apart from the seed, the PBT block and the per-lane
    hyperparameters, with rl_games' ``a2c_continuous`` over a feed-forward ``actor_critic``
    network with one trunk and a fixed sigma, and none of the extras the batched update leaves out.
    """
    def structure(cfg: dict) -> dict:
        params = {k: v for k, v in cfg["params"].items() if k != "seed"}
        params["config"] = {k: v for k, v in params["config"].items() if k not in PER_LANE}
        return params

    first = structure(cfgs[0])
    for idx, cfg in enumerate(cfgs[1:], 1):
        where = first_difference(first, structure(cfg), "agent.params")
        if where:
            raise UsageError(f"{where}: member {idx:03d} differs from member 000, and with agent.pbt.mode=batched only "
                             f"{', '.join(PREFIX + k for k in PER_LANE)} may differ between members")
    params = cfgs[0]["params"]
    network, config = params["network"], params["config"]
    space = (network.get("space") or {}).get("continuous") or {}
    checks = {
        "agent.params.algo.name": (params["algo"]["name"], ("a2c_continuous",)),
        "agent.params.model.name": (params["model"]["name"], ("continuous_a2c_logstd",)),
        "agent.params.network.name": (network["name"], ("actor_critic",)),
        "agent.params.network.separate": (bool(network.get("separate", False)), (False,)),
        "agent.params.network.space.continuous.fixed_sigma": (bool(space.get("fixed_sigma", False)), (True,)),
        "agent.params.config.lr_schedule": (config.get("lr_schedule"), (None, "fixed", "adaptive", "identity")),
        "agent.params.config.bound_loss_type": (config.get("bound_loss_type", "bound"), ("bound", "regularisation")),
    }
    for field, (value, allowed) in checks.items():
        if value not in allowed:
            shown = ", ".join(str(a) for a in allowed if a is not None)
            raise UsageError(f"{field}: agent.pbt.mode=batched trains {shown}, got '{value}'; use agent.pbt.mode=shared")
    extras = {"agent.params.network.rnn": network.get("rnn"), "agent.params.network.cnn": network.get("cnn"),
              "agent.params.config.central_value_config": config.get("central_value_config"),
              "agent.params.config.mixed_precision": config.get("mixed_precision"),
              "agent.params.config.normalize_rms_advantage": config.get("normalize_rms_advantage"),
              "agent.params.config.use_smooth_clamp": config.get("use_smooth_clamp"),
              "agent.params.config.weight_decay": config.get("weight_decay"),
              "agent.params.config.epochs_between_resets": config.get("epochs_between_resets"),
              "agent.params.config.use_action_masks": config.get("use_action_masks"),
              "agent.params.config.multi_gpu": config.get("multi_gpu")}
    for field, value in extras.items():
        if value:
            raise UsageError(f"{field}: agent.pbt.mode=batched has no such extra (got {value!r}); drop it or use agent.pbt.mode=shared")
    if config.get("ppo", True) is not True:
        raise UsageError("agent.params.config.ppo: agent.pbt.mode=batched trains PPO (ppo: True); use agent.pbt.mode=shared")


def build_a2c(cfgs: Sequence[dict], observation_space: Any, action_space: Any, envs: int, device: str) -> BatchedA2C:
    """One rl_games model per member, each built by rl_games' model builder from the member's own seed, stacked into a :class:`BatchedA2C`."""
    from rl_games.algos_torch import model_builder
    from rl_games.common.tr_helpers import DefaultRewardsShaper

    config = cfgs[0]["params"]["config"]
    build = {"actions_num": int(action_space.shape[0]), "input_shape": tuple(observation_space.shape), "num_seqs": envs,
             "value_size": 1, "normalize_value": bool(config.get("normalize_value", False)),
             "normalize_input": bool(config["normalize_input"])}
    models = []
    for cfg in cfgs:
        torch.manual_seed(int(cfg["params"].get("seed", 42)))
        models.append(model_builder.ModelBuilder().load(cfg["params"]).build(build).to(device))
    hyperparameters = {k: [c["params"]["config"].get(k) or 0.0 for c in cfgs] for k in PER_LANE}
    optimizer = torch.optim.Adam(models[0].parameters(), float(hyperparameters["learning_rate"][0]), eps=1e-08, fused=True)
    low, high = (torch.as_tensor(b, dtype=torch.float32) for b in (action_space.low, action_space.high))
    return BatchedA2C(models, config, hyperparameters, envs, low, high, DefaultRewardsShaper(**config.get("reward_shaper", {})),
                      optimizer.state_dict()["param_groups"][0])


def policy_obs(obs: Any) -> torch.Tensor:
    """The policy's observations: the tensor itself (the embedded tasks) or rl_games' ``obs`` entry (Isaac Lab's wrapper)."""
    if isinstance(obs, dict):
        obs = obs["obs"]
        if isinstance(obs, dict):
            raise UsageError("agent.params.env.concate_obs_groups: agent.pbt.mode=batched needs one observation tensor "
                             "(concate_obs_groups: True)")
    return obs


class LaneLearner(InPlaceLane):
    """Lane ``idx`` of a :class:`BatchedRunner` as the PBT core's :class:`~isaaclab_pbt.core.member.Learner`.

    Its hyperparameters are the lane's entries of the batched PPO's per-lane tensors, and its state
    is the lane's slice in the layout of rl_games' ``get_full_state_weights``, plus the block's curriculum.
    """

    library = "rl_games"

    def __init__(self, runner: BatchedRunner, idx: int, run_dir: str):
        self.runner, self.idx, self.run_dir = runner, idx, run_dir
        self.member: Optional[Any] = None

    def iteration_frames(self) -> int:
        return self.runner.a2c.batch_size

    def frames(self) -> int:
        return self.runner.frame

    def read(self, key: str, config_value: Any) -> Any:
        if not is_live(key):
            return config_value
        name = key[len(PREFIX):]
        value = float(self.runner.a2c.hp[name][self.idx])
        return int(round(value)) if name == "mini_epochs" else value

    def is_live(self, key: str) -> bool:
        return is_live(key)

    def write(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if is_live(key):
                name = key[len(PREFIX):]
                self.runner.a2c.hp[name][self.idx] = max(1, int(round(value))) if name == "mini_epochs" else float(value)

    def snapshot(self) -> dict:
        return self.runner.full_state(self.idx)

    def save(self, training_state: dict, f: BinaryIO) -> None:
        checkpoint.save(training_state, f)

    def load(self, source: str | BinaryIO) -> dict:
        return checkpoint.load(source, "cpu")

    def misfit(self, training_state: Any) -> Optional[str]:
        try:
            checkpoint.check_fits_state(self.runner.a2c.lane_state(self.idx), training_state)
        except ValueError as e:
            return str(e)
        return None

    def load_into(self, training_state: dict) -> None:
        self.runner.a2c.set_lane(self.idx, training_state)
        self.runner.best[self.idx] = float(training_state.get("last_mean_rewards", -1e9))
        self.runner.blocks.set_block_state(self.idx, training_state.get("env_state"))

    def digest(self, training_state: dict) -> str:
        return checkpoint.model_digest(training_state["model"])

    def budget_spent(self) -> bool:
        return self.runner.finished()

    def scalar(self, name: str, value: float, frame: int) -> None:
        writer = self.runner.writers[self.idx]
        if writer is not None:
            writer.add_scalar(name, value, frame)


class BatchedRunner:
    """The rollout and update loop of a batched population: rl_games' ``A2CBase.train`` for all members at once.

    Args:
        blocks: the env, one block of ``num_actors`` envs per member.
        a2c: the members' batched PPO.
        cfg: member 000's ``params.config`` (budget, checkpoint names and frequencies, episodes tracked).
        run_dirs: each member's run folder.
        abort: releases members waiting in the exchange when one fails.
    """

    def __init__(self, blocks: Blocks, a2c: BatchedA2C, cfg: dict, run_dirs: Sequence[str], abort: Callable[[], None]):
        from torch.utils.tensorboard import SummaryWriter

        self.blocks, self.a2c, self.run_dirs, self.abort = blocks, a2c, list(run_dirs), abort
        self.max_epochs, self.max_frames = int(cfg.get("max_epochs", -1)), int(cfg.get("max_frames", -1))
        self.name, self.save_frequency = cfg["name"], int(cfg.get("save_frequency", 0))
        self.save_best_after, self.games = int(cfg.get("save_best_after", 100)), int(cfg.get("games_to_track", 100))
        self.epoch = self.frame = 0
        self.best = [-1e9] * a2c.lanes  # rl_games' last_mean_rewards: the best mean reward a checkpoint was saved for
        self.episodes: list[list[tuple[float, float, float]]] = [[] for _ in range(a2c.lanes)]  # (reward, shaped, length)
        self.writers = [SummaryWriter(os.path.join(d, "summaries"), flush_secs=10) for d in self.run_dirs]
        for d in self.run_dirs:
            os.makedirs(os.path.join(d, "nn"), exist_ok=True)

    def finished(self) -> bool:
        return (0 < self.max_epochs <= self.epoch) or (0 < self.max_frames <= self.frame)

    def full_state(self, idx: int) -> dict:
        """Member ``idx``'s state as rl_games' ``get_full_state_weights`` returns it (CPU copies)."""
        return {**self.a2c.lane_state(idx), "epoch": self.epoch, "frame": self.frame,
                "last_mean_rewards": self.best[idx], "env_state": self.blocks.get_block_state(idx)}

    def learn(self, members: Sequence[Any]) -> None:
        """Train every lane to the budget: roll out all blocks together, update all lanes at once, tick every member."""
        env, a2c, lanes, envs = self.blocks.env, self.a2c, self.a2c.lanes, self.a2c.envs
        obs = policy_obs(env.reset()).view(lanes, envs, -1)
        returns = torch.zeros(lanes, envs, device=a2c.device)
        shaped_returns, lengths = torch.zeros_like(returns), torch.zeros_like(returns)
        while not self.finished():
            start = time.perf_counter()
            logs: dict[str, torch.Tensor] = {}
            with torch.no_grad():
                for _ in range(a2c.steps):
                    actions = a2c.act(obs)
                    next_obs, reward, done, infos = env.step(actions.reshape(lanes * envs, -1))
                    obs, reward, done = policy_obs(next_obs).view(lanes, envs, -1), reward.view(lanes, envs), done.view(lanes, envs)
                    time_outs = infos.get("time_outs")
                    shaped = a2c.process_env_step(reward, done, None if time_outs is None else time_outs.view(lanes, envs))
                    for idx, member in enumerate(members):
                        member.observe(self.blocks.restrict(infos, idx))
                    for key, value in infos.get("episode", {}).items():  # one value per block
                        logs[key] = logs.get(key, 0.0) + torch.as_tensor(value, device=a2c.device).float().expand(lanes)
                    returns += reward
                    shaped_returns += shaped
                    lengths += 1
                    if bool(done.any()):
                        self._count_episodes(done, returns, shaped_returns, lengths)
                a2c.compute_returns(obs)
            collected = time.perf_counter()
            losses = a2c.update()
            self.epoch += 1
            self.frame += a2c.batch_size
            self._log(start, collected, losses, {k: v / a2c.steps for k, v in logs.items()})
            tick(members, self.abort)
            self._save()
        for writer in self.writers:
            writer.close()

    @torch.no_grad()
    def _count_episodes(self, done: torch.Tensor, returns: torch.Tensor, shaped: torch.Tensor, lengths: torch.Tensor) -> None:
        """Each member's last ``games_to_track`` episodes (rl_games' ``game_rewards``), then the ended envs start again."""
        for idx in done.any(dim=1).nonzero().flatten().tolist():
            ended = done[idx]
            window = self.episodes[idx]
            window.extend(zip(returns[idx][ended].tolist(), shaped[idx][ended].tolist(), lengths[idx][ended].tolist()))
            del window[:-self.games]
        keep = 1.0 - done.float()
        returns.mul_(keep)
        shaped.mul_(keep)
        lengths.mul_(keep)

    def _mean(self, idx: int) -> Optional[tuple[float, float, float]]:
        window = self.episodes[idx]
        if not window:
            return None
        return tuple(sum(column) / len(window) for column in zip(*window))

    def _save(self) -> None:
        """rl_games' checkpoints in each member's ``nn/``: the best (``<name>.pth``), every ``save_frequency`` epochs, and the last."""
        for idx, folder in enumerate(self.run_dirs):
            means = self._mean(idx)
            reward = means[0] if means else float("-inf")
            nn_dir = os.path.join(folder, "nn")
            names = []
            if means and self.save_frequency > 0 and self.epoch % self.save_frequency == 0:
                names.append(f"last_{self.name}_ep_{self.epoch}_rew_{reward}")
            if means and reward > self.best[idx] and self.epoch >= self.save_best_after:
                self.best[idx] = reward
                names.append(self.name)
            if self.finished():
                names.append(f"last_{self.name}_ep_{self.epoch}_rew__{reward}_")
            if names:
                state = self.full_state(idx)
                for name in names:
                    with open(os.path.join(nn_dir, name + ".pth"), "wb") as f:
                        checkpoint.save(state, f)

    def _log(self, start: float, collected: float, losses: dict, logs: dict) -> None:
        """TensorBoard scalars under rl_games' names for each member, and one console line for the population."""
        now, a2c = time.perf_counter(), self.a2c
        fps = a2c.batch_size * a2c.lanes / (now - start)
        rewards = []
        for idx, writer in enumerate(self.writers):
            scalars = {"performance/step_inference_rl_update_fps": fps, "performance/rl_update_time": now - collected,
                       "performance/step_inference_time": collected - start,
                       "losses/a_loss": losses["a_loss"][idx], "losses/c_loss": losses["c_loss"][idx],
                       "losses/entropy": losses["entropy"][idx], "losses/bounds_loss": losses["b_loss"][idx],
                       "info/last_lr": a2c.hp["learning_rate"][idx], "info/e_clip": a2c.hp["e_clip"][idx],
                       "info/kl": losses["kl"][idx], "info/epochs": self.epoch,
                       **{f"Episode/{k}": v[idx] for k, v in logs.items()}}
            means = self._mean(idx)
            if means:
                rewards.append(means[0])
                scalars.update({"rewards/step": means[0], "shaped_rewards/step": means[1], "episode_lengths/step": means[2]})
                writer.add_scalar("rewards/iter", means[0], self.epoch)
            for name, value in scalars.items():
                writer.add_scalar(name, float(value), self.frame)
        best = max(range(len(rewards)), key=rewards.__getitem__) if rewards else None
        log.info("batched PPO epoch %d: %d members, %.0f frames/s (play %.2f s, update %.2f s)%s", self.epoch, a2c.lanes, fps,
                 collected - start, now - collected,
                 "" if best is None else f", mean reward {sum(rewards) / len(rewards):.3f}, best member {best:03d} {rewards[best]:.3f}")


def train_batched(args: Any, agent_cfg: dict, env_cfg: Any, pbt: PbtCfg, command: Optional[list[str]],
                  configure_member: Optional[Callable[[int, dict], None]] = None, env: Any = None) -> list[LaneLearner]:
    """Train the whole population as one batched PPO in this process; returns the members' learners.

    ``env``: the env of all blocks (an Isaac Lab env wrapped by
    :class:`~.isaaclab_env.SharedIsaacLabEnv`); by default the embedded task of the agent config,
    ``num_policies x num_actors`` envs. ``env_cfg`` is its config (the embedded task's dict, or
    Isaac Lab's env config). ``configure_member(idx, member_agent_cfg)`` may change a member's own
    copy of the agent config first (a Python hook, as for ``agent.pbt.mode=shared``); only
    per-lane values may differ.
    """
    from ..core.member import Member
    from ..shared.population import member_config, set_up
    from ..tasks import make_task
    from .runner import start_run

    cfg = agent_cfg["params"]["config"]
    n, per, seed = pbt.num_policies, int(cfg["num_actors"]), int(agent_cfg["params"].get("seed", 42))
    device = str(cfg.get("device", "cpu"))

    def embedded() -> Any:
        settings = {k: v for k, v in env_cfg.items() if k != "device"}
        return make_task(cfg["env_name"], n * per, device=device, seed=seed, num_blocks=n, **settings)

    blocks, exchange, restore = set_up(pbt, args.checkpoint, is_live, embedded if env is None else lambda: env, split=Blocks)
    configs = [member_config(agent_cfg, idx, seed, "params.seed", lambda c: env_cfg, configure_member, fresh=not restore)
               for idx in range(n)]
    cfgs = [c for c, _ in configs]
    check_batchable(cfgs)
    threads = int(agent_cfg["params"].get("torch_threads", 1))
    if threads > 0:  # the population's share of the CPU: what its members would have had as processes
        torch.set_num_threads(max(1, min(threads * n, os.cpu_count() or 1)))
    a2c = build_a2c(cfgs, blocks.env.observation_space, blocks.env.action_space, per, device)
    folders = []
    for member_cfg, member_pbt in configs:
        member_cfg["params"]["config"]["full_experiment_name"] = None  # each member its own run folder
        start_run(member_cfg, member_pbt, command or [], env_cfg)
        mcfg = member_cfg["params"]["config"]
        folders.append(os.path.join(mcfg["train_dir"], mcfg["full_experiment_name"]))
    runner = BatchedRunner(blocks, a2c, cfg, folders, exchange.abort)
    learners = [LaneLearner(runner, idx, folders[idx]) for idx in range(n)]
    for idx, path in sorted(restore.items()):
        loaded = learners[idx].load(path)
        problem = learners[idx].misfit(loaded)
        if problem:
            raise UsageError(f"--checkpoint: {path} does not fit this agent: {problem}")
        learners[idx].load_into(loaded)
        runner.epoch, runner.frame = int(loaded.get("epoch") or 0), int(loaded.get("frame") or 0)  # the same for every member
        log.info("member %03d resumes from %s", idx, path)
    log.info("batched population: %d members x %d envs of %s in one env, one PPO update for all", n, per, args.task)
    members = [Member(member_pbt, learners[idx], member_pbt.start_values(c, env_cfg), seed + idx, argv=None,
                      exchange=exchange, resume=bool(restore)) for idx, (c, member_pbt) in enumerate(configs)]
    for learner, member in zip(learners, members):
        learner.member = member
    try:
        runner.learn(members)
    finally:
        for member in members:
            member.finish()
    return learners
