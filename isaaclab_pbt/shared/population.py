"""What every library's one-process driver shares: what the mode refuses, where it resumes, one thread per learner."""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Any, Callable, Optional, Sequence

from ..core.agent_config import set_value
from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..core.workspace import Workspace

log = logging.getLogger("isaaclab_pbt")


def refuse_unshareable(pbt: PbtCfg, is_live: Callable[[str], bool]) -> None:
    """Whitelisted keys a one-process population cannot change, refused in one line before anything starts.

    ``env.*`` keys: the members share one env, whose reward weights are the same for every block.
    Restart-only keys: a restart re-executes the process, which is the whole population.
    """
    env_keys = [k for k in pbt.mutation if k.startswith("env.")]
    if env_keys:
        raise UsageError(f"agent.pbt.mode: '{pbt.mode}' cannot whitelist env keys ({', '.join(env_keys)}): the members "
                         "share one env, whose reward weights are the same for every block; use agent.pbt.mode=processes")
    restart_only = [k for k in pbt.mutation if not is_live(k)]
    if restart_only:
        raise UsageError(f"agent.pbt.mode: '{pbt.mode}' changes hyperparameters in place only, and {', '.join(restart_only)} "
                         "need a restart; drop them from agent.pbt.mutation or use agent.pbt.mode=processes")


def check_resume(pbt: PbtCfg, checkpoint: Optional[str]) -> None:
    """A one-process population resumes from its own workspace folder, as a whole, or not at all."""
    if checkpoint and not (os.path.isdir(checkpoint) and os.path.samefile(checkpoint, pbt.workspace_dir)):
        raise UsageError(f"--checkpoint: a one-process population resumes from its workspace as a whole: "
                         f"pass --checkpoint={pbt.workspace_dir}")


def resume_points(ws: Workspace, members: int) -> dict[int, str]:
    """Each member's weights at the newest interval that every member published with its weights still kept.

    The members of one process tick together, so they must continue from the same interval: a
    crash may have caught some of them one publish ahead of the others.
    """
    kept = [{it for it in ws.iterations(i) if os.path.isfile(ws.weights_path(i, it))} for i in range(members)]
    common = set.intersection(*kept) if kept else set()
    if not common:
        raise UsageError(f"--checkpoint: {ws.root} holds no interval that all {members} members published; start a new workspace")
    iteration = max(common)
    return {i: ws.weights_path(i, iteration) for i in range(members)}


def set_up(pbt: PbtCfg, checkpoint: Optional[str], is_live: Callable[[str], bool],
           make_env: Callable[[], Any], split: Optional[Callable[[Any, int], Any]] = None) -> tuple[Any, Any, dict[int, str]]:
    """Refuse what the mode cannot do, find where a resume starts, build the env: ``(blocks, exchange, restore)``.

    ``split(env, num_policies)`` makes the blocks (default: a :class:`~.lockstep.LockstepEnv`, for
    one thread per learner); ``restore`` maps each member to its weights file when ``checkpoint``
    (the workspace) is given.
    """
    from ..core.exchange import Exchange
    from .lockstep import LockstepEnv

    refuse_unshareable(pbt, is_live)
    check_resume(pbt, checkpoint)
    n = pbt.num_policies
    restore = resume_points(Workspace(pbt.workspace_dir, n), n) if checkpoint else {}
    return (split or LockstepEnv)(make_env(), n), Exchange(n), restore


def member_config(agent_cfg: dict, idx: int, seed: int, seed_key: str, env_of: Callable[[dict], Any],
                  configure_member: Optional[Callable[[int, dict], None]], fresh: bool) -> tuple[dict, PbtCfg]:
    """Member ``idx``'s own copy of the agent config (its index, seed ``seed + idx`` at ``agent.<seed_key>``) and PBT settings.

    ``configure_member(idx, cfg)`` may change the copy first; a fresh start then diversifies it
    (with ``agent.pbt.diversify``), drawing from the member's own seed. ``env_of(cfg)`` is where
    its whitelisted ``env.*`` keys would live.
    """
    from ..core.member import diversify

    cfg = copy.deepcopy(agent_cfg)
    cfg["pbt"]["policy_idx"] = idx
    set_value({"agent": cfg}, f"agent.{seed_key}", seed + idx)
    if configure_member is not None:
        configure_member(idx, cfg)
    pbt = PbtCfg.from_agent_cfg(cfg, env_of(cfg))
    if pbt.diversify and fresh:
        diversify(pbt, cfg, env_of(cfg), seed + idx)
    return cfg, pbt


def train_one_process(args: Any, agent_cfg: dict, pbt: PbtCfg, is_live: Callable[[str], bool],
                      configure_member: Optional[Callable[[int, dict], None]],
                      build: Callable[[int, dict, PbtCfg, Any, Optional[str]], tuple[Any, Callable[[], None]]],
                      env: Any = None, env_cfg: Any = None) -> list[Any]:
    """The whole population in this process, for a backend whose agent config is flat (rsl_rl's, skrl's).

    Flat: ``num_envs``, ``device``, ``seed`` and the embedded task's ``env`` settings at the top.
    ``env``: the env of all blocks, built by the caller (an Isaac Lab env with ``env_cfg`` its
    config); by default the embedded task ``args.task``. ``build(idx, member_cfg, member_pbt,
    lockstep, restore)`` makes member ``idx``'s learner on its block (continued from the weights
    file ``restore`` when resuming) and returns it with the call that trains it; this wires each
    learner to its PBT member and trains them all.
    """
    from ..core.member import Member
    from ..tasks import make_task

    n, seed = pbt.num_policies, int(agent_cfg.get("seed", 42))

    def embedded() -> Any:
        return make_task(args.task, n * int(agent_cfg["num_envs"]), device=str(agent_cfg.get("device", "cpu")), seed=seed,
                         num_blocks=n, **agent_cfg["env"])

    def env_of(cfg: dict) -> Any:
        return cfg["env"] if env is None else env_cfg

    lockstep, exchange, restore = set_up(pbt, args.checkpoint, is_live, embedded if env is None else lambda: env)
    log.info("one-process population: %d members x %d envs of %s in one env", n, lockstep.envs_per_block, args.task)
    learners, runs = [], []
    for idx in range(n):
        member_cfg, member_pbt = member_config(agent_cfg, idx, seed, "seed", env_of, configure_member, fresh=not restore)
        learner, run = build(idx, member_cfg, member_pbt, lockstep, restore.get(idx))
        if restore:
            log.info("member %03d resumes from %s", idx, restore[idx])
        member = Member(member_pbt, learner, member_pbt.start_values(member_cfg, env_of(member_cfg)), seed + idx,
                        argv=None, exchange=exchange, resume=bool(restore))
        learner.attach(member)
        learners.append(learner)
        runs.append(run)
    train_in_threads(runs, [learner.member.finish for learner in learners], [lockstep.abort, exchange.abort])
    return learners


def train_in_threads(train: Sequence[Callable[[], None]], finish: Sequence[Callable[[], None]],
                     abort: Sequence[Callable[[], None]]) -> None:
    """Run ``train[i]`` in thread ``i`` and ``finish[i]`` after it; the first failure aborts the rest and is raised.

    The learners wait for one another at every env step and every interval, so one that fails
    would leave the others waiting for ever: ``abort`` (the lockstep env's, the exchange's)
    releases them with an error.
    """
    errors: list[BaseException] = []

    def run(idx: int) -> None:
        try:
            train[idx]()
        except BaseException as e:  # noqa: BLE001 - any failure must release the others
            if not errors:
                errors.append(e)
            for release in abort:
                release()
        finally:
            finish[idx]()

    threads = [threading.Thread(target=run, args=(idx,), name=f"pbt-member-{idx:03d}") for idx in range(len(train))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
