"""One PBT member, whatever RL library trains it: the tick, the exploit/explore step, and the restart.

A backend calls :meth:`Member.end_of_iteration` once per training iteration, after the policy
update and before the next rollout, and :meth:`Member.observe` with each env step's infos. All
that differs between libraries is behind :class:`Learner`: how frames are counted, where each
live hyperparameter is kept, what the full training state is and how a donor's is copied in.
This module imports no RL library and no torch.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Mapping, Optional, Protocol, Sequence

from .agent_config import get_flag, restart_argv, set_override
from .config import PbtCfg, PbtConfigError
from .decision import Decision, alive, decide
from .errors import UsageError
from .mutation import member_rng
from .objective import ObjectiveTracker
from .workspace import BackgroundPublisher, Record, Workspace, end_on_full_disk

log = logging.getLogger("isaaclab_pbt")


REPLACEMENT_EVENTS = ("replaced", "mutated")
"""Lineage events that count in ``pbt/replacements`` (a restart counts them again from the lineage)."""
MISSING_OBJECTIVE_INTERVALS = 3
"""Intervals without the objective key ever seen after which the member stops (a wrong key, not a slow episode)."""


@dataclass
class Seat:
    """A member process's claim on its folder: the lock it holds, its run's identity, its replacements so far."""

    lock: int
    run_id: str
    replacements: int


def take_seat(ws: Workspace, idx: int, resume: bool) -> Seat:
    """Claim member ``idx``'s folder for this process, or raise :class:`UsageError` saying why not.

    One process per folder (a second one with the same ``policy_idx`` is refused); a fresh start
    over an earlier run's records is refused (a resume continues its run id); temporary files left
    by a kill are removed and history lines a kill lost are restored from the records.
    """
    try:
        lock = ws.lock(idx)  # held until the process ends (released across os.execv, retaken by the new image)
    except BlockingIOError:
        raise UsageError(f"agent.pbt.policy_idx: {idx} is already trained by another process "
                         f"(it holds {ws.member_dir(idx)}); give each member its own policy_idx") from None
    newest = ws.latest(idx)
    if newest is not None and not resume:
        raise UsageError(f"agent.pbt.workspace: {ws.member_dir(idx)} holds member {idx}'s records of an earlier run "
                         f"(iteration {newest.iteration}); pass --checkpoint to resume it, or use a new workspace")
    run_id = newest.run if newest is not None and newest.run else uuid.uuid4().hex[:16]
    ws.remove_leftovers(idx)
    ws.backfill_history(idx)
    return Seat(lock, run_id, sum(e.get("event") in REPLACEMENT_EVENTS for e in ws.lineage(idx)))

def diversify(pbt: PbtCfg, agent_cfg: dict, env_cfg: Any, seed: int) -> dict[str, tuple[Any, Any]]:
    """Mutate every whitelisted value once, before the agent exists, and log it in the member's lineage.

    Runs on a fresh start only (a restart or resume passes ``--checkpoint`` and keeps its values),
    so restart-only keys such as the horizon can be diversified too.
    """
    from ..core.mutation import member_rng, mutate
    from ..core.workspace import Workspace

    start = pbt.start_values(agent_cfg, env_cfg)
    rng = member_rng(seed, pbt.policy_idx, "launch")
    new = mutate(start, pbt.space(), 1.0, pbt.change_range, rng, pbt.resample_probability)
    for key, value in new.items():
        pbt.set_value(agent_cfg, env_cfg, key, value)
    changed = {k: (start[k], v) for k, v in new.items() if v != start[k]}
    Workspace(pbt.workspace_dir, pbt.num_policies).append_lineage(pbt.policy_idx, {
        "event": "diversified", "time": time.time(), "frame": 0, "iteration": 0,
        "changed": {k: list(v) for k, v in changed.items()}, "hyperparameters": new,
    })
    log.info("PBT member %03d: diversified at launch: %s", pbt.policy_idx,
             ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in new.items()) or "nothing whitelisted")
    return changed


class ObjectiveWatch:
    """Names an objective key that never appears, at the first interval, and stops the member after a few: it is a wrong key."""

    def __init__(self, cfg: PbtCfg, tracker: ObjectiveTracker):
        self.cfg, self.tracker, self.intervals = cfg, tracker, 0

    def check(self) -> None:
        """Call once per interval, before the tracker is reset."""
        if self.tracker.seen_key:
            return
        self.intervals += 1
        key, present = self.cfg.objective, ", ".join(self.tracker.available()) or "none"
        if self.intervals == 1:
            log.warning("PBT member %03d: objective '%s' not found in env infos this interval; keys present: %s",
                        self.cfg.policy_idx, key, present)
        if self.intervals >= MISSING_OBJECTIVE_INTERVALS:
            raise UsageError(f"agent.pbt.objective: '{key}' was not in the env infos for {self.intervals} intervals; "
                             f"keys present: {present}")


class Learner(Protocol):
    """A running learner of one RL library, as the PBT core sees it."""

    library: str
    """The library's name (``rl_games``, ``rsl_rl``, ``skrl``), published in every record."""

    def frames(self) -> int:
        """Env frames this member has trained, across restarts."""

    def iteration_frames(self) -> int:
        """Frames of one training iteration (to find where a restarted process started)."""

    def read(self, key: str, config_value: Any) -> Any:
        """The value of whitelisted ``key`` that training uses now."""

    def is_live(self, key: str) -> bool:
        """True when ``key`` can change in the running learner (else it needs a restart)."""

    def write(self, values: Mapping[str, Any]) -> None:
        """Set the live keys among ``values`` in the running learner."""

    def snapshot(self) -> Any:
        """A CPU copy of the full training state, taken now."""

    def save(self, state: Any, f: BinaryIO) -> None: ...

    def load(self, f: BinaryIO) -> Any:
        """A donor's state, loaded safely (no code runs) from its open weights file."""

    def misfit(self, state: Any) -> Optional[str]:
        """Why ``state`` cannot replace this learner's (``None`` when it fits), checked before any copy."""

    def load_into(self, state: Any) -> None: ...

    def digest(self, state: Any) -> str:
        """A hash of the weights in ``state`` (logged in the lineage)."""

    def budget_spent(self) -> bool:
        """True when training ends after this iteration."""

    def restart_state(self, state: Any) -> Any:
        """``state`` with this member's own frame and iteration counters, for a restart."""

    def run_overrides(self) -> dict[str, Any]:
        """Overrides that make a restarted process continue in the same run folder."""

    def save_restart(self, state: Any, name: str) -> str:
        """Write ``state`` where this library's ``--checkpoint`` reads it, as ``<name>`` plus its suffix; returns the path.

        The backend also removes its older PBT copies there, so restarts do not fill the run folder.
        """

    def scalar(self, name: str, value: float, frame: int) -> None:
        """Log a ``pbt/*`` scalar (TensorBoard)."""

    def before_exec(self) -> None:
        """Flush what the process would lose on ``exec`` (summary writers); wandb is finished by the member."""


class Member:
    """The PBT side of one population member, driven by a backend through a :class:`Learner`.

    Args:
        cfg: the validated PBT settings of this member.
        learner: the running learner of the member's RL library.
        config_values: the configured value of every whitelisted key (:meth:`PbtCfg.start_values`).
        seed: the training seed; with the member index and iteration it seeds every PBT draw.
        argv: the command line to re-execute for restarts (``None``: restarts are not possible).
        exec_fn: replaces the process (``os.execv``); tests may pass a recorder.
        exchange: the in-memory :class:`~.exchange.Exchange` of a one-process population: records
            and donor states come from there instead of the workspace (which is still published to).
        resume: this member continues its earlier records (default: when ``argv`` has ``--checkpoint``).
    """

    def __init__(self, cfg: PbtCfg, learner: Learner, config_values: Mapping[str, Any], seed: int,
                 argv: Optional[Sequence[str]] = None, exec_fn: Callable[[str, list[str]], Any] = os.execv,
                 exchange: Optional[Any] = None, resume: Optional[bool] = None):
        self.cfg = cfg
        self.exchange = exchange
        self.learner = learner
        self.workspace = Workspace(cfg.workspace_dir, cfg.num_policies)
        self.publisher = BackgroundPublisher(Workspace(cfg.workspace_dir, cfg.num_policies), cfg.keep_checkpoints)
        self.tracker = ObjectiveTracker(cfg.objective, cfg.objective_reduce)
        self.config_values = dict(config_values)
        self.seed = int(seed)
        self.argv = list(argv) if argv is not None else None
        self.exec_fn = exec_fn
        self.last_iteration: Optional[int] = None
        self.burn_in_until = 0
        self.watch = ObjectiveWatch(cfg, self.tracker)
        self.finished = False
        restart_only = [k for k in cfg.mutation if not learner.is_live(k)]
        if cfg.apply == "in-place" and restart_only:
            raise PbtConfigError(f"agent.pbt.apply: 'in-place' cannot change {', '.join(restart_only)}; use 'restart' or 'auto'")
        needs_restart = cfg.apply == "restart" or (cfg.apply == "auto" and restart_only)
        if needs_restart and self.argv is None:
            raise PbtConfigError(f"agent.pbt.apply: '{cfg.apply}' needs the process command line to restart; use 'in-place'")
        if resume is None:
            resume = self.argv is not None and get_flag(self.argv, "--checkpoint") is not None
        self.seat = take_seat(self.workspace, cfg.policy_idx, resume)
        end_on_full_disk()  # a summary writer's thread would otherwise die of it and hang the member
        self.replacements = self.seat.replacements

    def observe(self, infos: Any) -> None:
        """Collect the objective from one env step's infos."""
        self.tracker.observe(infos)

    def hyperparameters(self) -> dict[str, Any]:
        """Current values of the whitelisted keys, read from the live learner where they live."""
        return {k: self.learner.read(k, v) for k, v in self.config_values.items()}

    def end_of_iteration(self) -> Optional[Decision]:
        """Run the PBT step if the frame counter crossed an interval boundary since the last one."""
        cfg, learner = self.cfg, self.learner
        frame = int(learner.frames())
        if self.last_iteration is None:  # first iteration of this process (fresh, resumed or restarted)
            start = max(frame - int(learner.iteration_frames()), 0)
            self.last_iteration = start // cfg.interval_steps
            self.burn_in_until = start + cfg.burn_in_steps
        iteration = frame // cfg.interval_steps
        if iteration <= self.last_iteration:
            return None
        self.last_iteration = iteration

        objective, own_best = self.tracker.value(), self.tracker.best()
        self.watch.check()
        self.tracker.reset()
        own = Record(cfg.policy_idx, iteration, frame, objective, self.hyperparameters(),
                     run=self.seat.run_id, library=learner.library)
        state = learner.snapshot()  # a copy: training may change the learner after this line

        records = self.exchange.gather(own, state) if self.exchange is not None else self.workspace.population(skip=cfg.policy_idx)
        self._check_same_kind(own, records)
        records[cfg.policy_idx] = own  # from memory: its file may still be on the way, and reading it would cost the tick
        now = time.time()
        known = [r.objective for r in alive(records, cfg, now).values() if r.objective is not None]
        best = own.objective is not None and own.objective >= max(known)
        self.publisher.submit(own, lambda f: learner.save(state, f), best)
        rng = member_rng(self.seed, cfg.policy_idx, iteration)
        decision, reason = decide(cfg, own, records, now, self.burn_in_until, rng, own_best, self.workspace.history)
        if decision is not None and learner.budget_spent():
            decision, reason = None, "training budget reached: published, nothing to replace"
        self._log_tick(own, known, reason)
        if decision is not None:
            self.apply(decision, own, rng, state)
        return decision

    def _check_same_kind(self, own: Record, records: Mapping[int, Record]) -> None:
        """Refuse a population that mixes RL libraries or whitelists: its members could never swap states.

        Each record names the library that trained it; records of older versions do not, but the
        names of their whitelisted keys say it too (``agent.params.config.*`` for rl_games,
        ``agent.algorithm.*`` for rsl_rl): a member with none of ours trains something else.
        Records that share some keys are read as usual, and :func:`~.decision.decide` takes from a
        donor only the keys this member whitelists.
        """
        mine = set(own.hyperparameters)
        for idx, record in sorted(records.items()):
            if idx == own.policy_idx:
                continue
            if record.library and own.library and record.library != own.library:
                raise UsageError(
                    f"agent.pbt.workspace: member {idx:03d} trains with {record.library} but member {own.policy_idx:03d} "
                    f"(this one) trains with {own.library}; one population trains with one RL library")
            theirs = set(record.hyperparameters)
            if theirs and not theirs & mine:
                raise UsageError(
                    f"agent.pbt.workspace: member {idx:03d} mutates {_describe(theirs)} but member {own.policy_idx:03d} "
                    f"(this one) mutates {_describe(mine)}; one population trains with one RL library and one agent.pbt.mutation")

    def flush(self) -> None:
        """Wait until the last published state is on disk (before a restart)."""
        self.publisher.flush()

    def finish(self) -> None:
        """At the end of training: the last state on disk and, when the budget was reached, a ``finished`` lineage entry."""
        self.flush()
        if not self.finished and self.last_iteration is not None and self.learner.budget_spent():
            self.finished = True
            self.workspace.append_lineage(self.cfg.policy_idx, {
                "event": "finished", "time": time.time(), "frame": int(self.learner.frames()), "iteration": self.last_iteration})

    def apply(self, decision: Decision, own: Record, rng: Any, own_state: Any) -> None:
        """Continue from the donor's state with the mutated values, live or by restarting.

        ``own_state`` is this tick's snapshot: what a mutation alone (no donor) continues from.
        """
        cfg, learner = self.cfg, self.learner
        entry = {
            "event": "replaced" if decision.donor != cfg.policy_idx else "mutated",
            "time": time.time(), "frame": own.frame, "iteration": own.iteration, "objective": own.objective,
            "donor": decision.donor, "donor_iteration": decision.donor_iteration, "donor_frame": decision.donor_frame,
            "changed": {k: list(v) for k, v in decision.changed.items()},
            "hyperparameters": decision.hyperparameters,
            "ranked": {f"{i:03d}": [decision.compared[i], o] for i, o in decision.ranking.objectives},
        }
        state = None
        if decision.donor != cfg.policy_idx and self.exchange is not None:
            state = self.exchange.state(decision.donor, decision.donor_iteration)  # in memory: a learner of this process, same networks
            if state is None:
                log.warning("PBT member %03d: not replacing from %03d: its state of iteration %d is not in memory",
                            cfg.policy_idx, decision.donor, decision.donor_iteration)
                return
        elif decision.donor != cfg.policy_idx:
            path = self.workspace.weights_path(decision.donor, decision.donor_iteration)
            weights = self.workspace.open_weights(decision.donor, decision.donor_iteration)
            problem = f"donor weights {path} are gone or not a regular file" if weights is None else None
            if weights is not None:
                try:
                    with weights:
                        state = learner.load(weights)
                    misfit = learner.misfit(state)
                    if misfit is not None:
                        problem = f"donor {decision.donor:03d}'s state does not fit this agent: {misfit}"
                except Exception as e:  # corrupt, hostile or deleted under us: keep training as we are
                    problem = f"cannot load donor weights {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            if problem is not None:
                log.warning("PBT member %03d: not replacing from %03d: %s", cfg.policy_idx, decision.donor, problem)
                self.workspace.append_lineage(cfg.policy_idx, {**entry, "event": "rejected", "reason": problem})
                return
        in_place = cfg.apply == "in-place" or (cfg.apply == "auto" and all(learner.is_live(k) for k in decision.changed))
        entry["applied"] = "in-place" if in_place else "restart"
        if not in_place:
            return self.restart(decision, own, own_state if state is None else state, entry, rng)
        if state is not None:
            learner.load_into(state)
        learner.write(decision.hyperparameters)
        entry["weights_sha256"] = learner.digest(own_state if state is None else state)  # the weights it now trains
        self.workspace.append_lineage(cfg.policy_idx, entry)
        self.replacements += 1
        self.tracker.reset()
        self.burn_in_until = own.frame + cfg.burn_in_steps
        log.info("PBT member %03d: %s from %03d in place at frame %d, changed %s",
                 cfg.policy_idx, entry["event"], decision.donor, own.frame, _fmt_changed(decision.changed))

    def restart(self, decision: Decision, own: Record, state: Any, entry: dict, rng: Any) -> None:
        """Save the chosen state into this run's folder and re-execute the process from it."""
        learner = self.learner
        state = learner.restart_state(state)  # the donor's weights, this member's own frame and budget
        path = learner.save_restart(state, f"pbt_{own.iteration:06d}_from_{decision.donor:03d}")
        entry["weights_sha256"] = learner.digest(state)
        self.workspace.append_lineage(self.cfg.policy_idx, entry)
        argv = restart_argv(self.argv, path, rng.randrange(1, 2**31), decision.hyperparameters)
        for key, value in learner.run_overrides().items():
            argv = set_override(argv, key, value)
        log.info("PBT member %03d: %s from %03d, restarting at frame %d, changed %s",
                 self.cfg.policy_idx, entry["event"], decision.donor, own.frame, _fmt_changed(decision.changed))
        learner.before_exec()
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish()  # the restarted process resumes the same run id
        self.flush()  # os.execv does not wait for threads
        sys.stdout.flush()
        sys.stderr.flush()
        self.exec_fn(sys.executable, [sys.executable, *argv])

    def _log_tick(self, own: Record, known: list[float], reason: str) -> None:
        """One log line per tick, and the ``pbt/*`` scalars; ``known``: living members' objectives."""
        shown = "none" if own.objective is None else f"{own.objective:.4g}"
        log.info("PBT member %03d iteration %d frame %d: objective %s, %d/%d members ranked: %s",
                 self.cfg.policy_idx, own.iteration, own.frame, shown, len(known), self.cfg.num_policies, reason)
        scalar = self.learner.scalar
        if own.objective is not None:
            scalar("pbt/objective", own.objective, own.frame)
        if known:
            scalar("pbt/population_best", max(known), own.frame)
            scalar("pbt/population_mean", statistics.mean(known), own.frame)
        scalar("pbt/replacements", self.replacements, own.frame)
        for key, value in own.hyperparameters.items():
            scalar(f"pbt/{short_name(key)}", value, own.frame)


def short_name(key: str) -> str:
    """``learning_rate`` for ``agent.params.config.learning_rate``, ``rewards.lift.weight`` for an env reward weight."""
    return key.split(".", 1)[1] if key.startswith("env.") else key.rsplit(".", 1)[-1]


def _describe(keys: set[str]) -> str:
    prefixes = sorted({k.rsplit(".", 1)[0] + ".*" for k in keys})
    return ", ".join(prefixes[:3]) + ("" if len(prefixes) <= 3 else ", ...")


def _fmt_changed(changed: Mapping[str, tuple[float, float]]) -> str:
    return ", ".join(f"{short_name(k)} {a:.4g}->{b:.4g}" for k, (a, b) in changed.items()) or "nothing"
