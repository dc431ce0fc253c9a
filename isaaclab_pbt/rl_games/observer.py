"""The rl_games observer that makes a training process a PBT member.

rl_games calls ``process_infos`` at every env step (the objective is collected there) and
``after_print_stats`` once per epoch, after the policy update and before the next rollout. The PBT
tick runs there, on global rank 0, whenever the frame counter crosses a multiple of
``interval_steps``: publish, rank, and for an underperformer load the donor and mutate, either in
the live agent or by re-executing the process with the donor checkpoint. Publishing costs the tick
a copy of the state only: a background thread writes it while training goes on.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from rl_games.common.algo_observer import IsaacAlgoObserver

from ..core.config import PbtCfg, PbtConfigError
from ..core.decision import Decision, alive, decide
from ..core.member import ObjectiveWatch, take_seat
from ..core.mutation import member_rng
from ..core.objective import ObjectiveTracker
from ..core.restart import get_flag, restart_argv, set_override
from ..core.workspace import BackgroundPublisher, Record, Workspace, end_on_full_disk
from . import checkpoint, hparams

log = logging.getLogger("isaaclab_pbt")

KEEP_NN_COPIES = 2
"""Newest ``pbt_*`` and ``restore_*`` copies kept in the run's nn/ folder at each restart."""


class PbtObserver(IsaacAlgoObserver):
    """Isaac Lab's episode logging plus the PBT tick of one population member.

    Args:
        cfg: the validated PBT settings of this member.
        agent_cfg: the whole agent config (the starting values of whitelisted hyperparameters).
        seed: the training seed; with the member index and iteration it seeds every PBT draw.
        argv: the command line to re-execute for restarts (``None``: restarts are not possible).
        exec_fn: replaces the process (``os.execv``); tests may pass a recorder.
        env_cfg: the env config holding whitelisted ``env.*`` keys (default: the agent's ``env_config``).
    """

    def __init__(
        self,
        cfg: PbtCfg,
        agent_cfg: Mapping[str, Any],
        seed: int,
        argv: Optional[Sequence[str]] = None,
        exec_fn: Callable[[str, list[str]], Any] = os.execv,
        env_cfg: Any = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.workspace = Workspace(cfg.workspace_dir, cfg.num_policies)
        self.publisher = BackgroundPublisher(Workspace(cfg.workspace_dir, cfg.num_policies), cfg.keep_checkpoints)
        self.tracker = ObjectiveTracker(cfg.objective, cfg.objective_reduce)
        self.config_values = cfg.start_values(agent_cfg, env_cfg)
        self.seed = int(seed)
        self.argv = list(argv) if argv is not None else None
        self.exec_fn = exec_fn
        self.algo: Any = None
        self.last_iteration: Optional[int] = None
        self.burn_in_until = 0
        self.replacements = 0
        self.watch = ObjectiveWatch(cfg, self.tracker)
        self.finished = False
        self._lock: Optional[int] = None
        self.resume = self.argv is not None and get_flag(self.argv, "--checkpoint") is not None
        self.run_id = ""

    # -- rl_games hooks -----------------------------------------------------------------------
    def after_init(self, algo: Any) -> None:
        super().after_init(algo)
        self.algo = algo
        if getattr(algo, "multi_gpu", False):
            raise PbtConfigError("agent.pbt.enabled: a member cannot use multi_gpu=True; run one process per member")
        restart_only = [k for k in self.cfg.mutation if not hparams.is_live(k, algo)]
        if self.cfg.apply == "in-place" and restart_only:
            raise PbtConfigError(f"agent.pbt.apply: 'in-place' cannot change {', '.join(restart_only)}; use 'restart' or 'auto'")
        needs_restart = self.cfg.apply == "restart" or (self.cfg.apply == "auto" and restart_only)
        if needs_restart and self.argv is None:
            raise PbtConfigError(f"agent.pbt.apply: '{self.cfg.apply}' needs the process command line to restart; use 'in-place'")
        seat = take_seat(self.workspace, self.cfg.policy_idx, self.resume)
        end_on_full_disk()  # rl_games' TensorBoard writer thread would otherwise die of it and hang the member
        self._lock, self.run_id, self.replacements = seat.lock, seat.run_id, seat.replacements

    def process_infos(self, infos: Any, done_indices: Any) -> None:
        super().process_infos(infos, done_indices)
        self.tracker.observe(infos)

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        super().after_print_stats(frame, epoch_num, total_time)
        if getattr(self.algo, "global_rank", 0) == 0:
            self.tick()

    # -- the PBT tick -------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, float]:
        """Current values of the whitelisted keys, read from the live agent where they live."""
        return {k: hparams.read(self.algo, k, v) for k, v in self.config_values.items()}

    def tick(self) -> Optional[Decision]:
        """Run the PBT step if the frame counter crossed an interval boundary since the last one."""
        cfg, algo = self.cfg, self.algo
        frame = int(algo.frame)
        if self.last_iteration is None:  # first epoch of this process (fresh, resumed or restarted)
            start = max(frame - int(algo.curr_frames), 0)
            self.last_iteration = start // cfg.interval_steps
            self.burn_in_until = start + cfg.burn_in_steps
        iteration = frame // cfg.interval_steps
        if iteration <= self.last_iteration:
            return None
        self.last_iteration = iteration

        objective, own_best = self.tracker.value(), self.tracker.best()
        self.watch.check()
        self.tracker.reset()
        own = Record(cfg.policy_idx, iteration, frame, objective, self.hyperparameters(), run=self.run_id)
        state = checkpoint.published_state(algo)  # a copy: the agent may change after this line

        records = self.workspace.population()
        records[cfg.policy_idx] = own  # from memory: its file may still be on the way
        now = time.time()
        known = [r.objective for r in alive(records, cfg, now).values() if r.objective is not None]
        best = own.objective is not None and own.objective >= max(known)
        self.publisher.submit(own, lambda f: checkpoint.save(state, f), best)
        rng = member_rng(self.seed, cfg.policy_idx, iteration)
        decision, reason = decide(cfg, own, records, now, self.burn_in_until, rng, own_best, self.workspace.history)
        if decision is not None and self._budget_spent():
            decision, reason = None, "training budget reached: published, nothing to replace"
        self._log_tick(own, known, reason)
        if decision is not None:
            self.apply(decision, own, rng)
        return decision

    def flush(self) -> None:
        """Wait until the last published state is on disk; called at the end of training.

        When rl_games stopped because the budget was reached (a normal end), the lineage says so
        with a ``finished`` entry, once.
        """
        self.publisher.flush()
        algo = self.algo
        if algo is not None and not self.finished and self.last_iteration is not None and self._budget_spent():
            self.finished = True
            self.workspace.append_lineage(self.cfg.policy_idx, {
                "event": "finished", "time": time.time(), "frame": int(algo.frame), "iteration": self.last_iteration})

    def _budget_spent(self) -> bool:
        """True when rl_games ends training after this epoch (a replacement now would be wasted)."""
        algo = self.algo
        return (0 < algo.max_epochs <= algo.epoch_num) or (0 < algo.max_frames <= algo.frame)

    def apply(self, decision: Decision, own: Record, rng: Any) -> None:
        """Continue from the donor's weights with the mutated values, live or by restarting."""
        cfg, algo = self.cfg, self.algo
        state = None
        if decision.donor != cfg.policy_idx:
            path = self.workspace.weights_path(decision.donor, decision.donor_iteration)
            weights = self.workspace.open_weights(decision.donor, decision.donor_iteration)
            if weights is None:
                self._reject(decision, own, f"donor weights {path} are gone or not a regular file")
                return
            try:
                with weights:
                    state = checkpoint.load(weights, algo.ppo_device)
            except Exception as e:  # corrupt or hostile: keep training as we are
                self._reject(decision, own, f"cannot load donor weights {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                return
        if state is not None:
            try:
                checkpoint.check_fits(algo, state)
            except ValueError as e:
                self._reject(decision, own, f"donor {decision.donor:03d}'s state does not fit this agent: {e}")
                return
        changed_keys = set(decision.changed)
        live = all(hparams.is_live(k, algo) for k in changed_keys)
        in_place = cfg.apply == "in-place" or (cfg.apply == "auto" and live)
        entry = {
            "event": "replaced" if state is not None else "mutated",
            "time": time.time(),
            "frame": own.frame,
            "iteration": own.iteration,
            "objective": own.objective,
            "donor": decision.donor,
            "donor_iteration": decision.donor_iteration,
            "donor_frame": decision.donor_frame,
            "changed": {k: list(v) for k, v in decision.changed.items()},
            "hyperparameters": decision.hyperparameters,
            "ranked": {f"{i:03d}": [decision.compared[i], o] for i, o in decision.ranking.objectives},
            "applied": "in-place" if in_place else "restart",
        }
        if in_place:
            if state is not None:
                checkpoint.load_into(algo, state)
            hparams.write(algo, decision.hyperparameters)
            entry["weights_sha256"] = checkpoint.model_digest(algo.model.state_dict())
            self.workspace.append_lineage(cfg.policy_idx, entry)
            self.replacements += 1
            self.tracker.reset()
            self.burn_in_until = own.frame + cfg.burn_in_steps
            log.info("PBT member %03d: %s from %03d in place at frame %d, changed %s",
                     cfg.policy_idx, entry["event"], decision.donor, own.frame, _fmt_changed(decision.changed))
            return
        self.restart(decision, own, state, entry, rng)

    def _reject(self, decision: Decision, own: Record, reason: str) -> None:
        """Keep training as before, and say why in the log and the lineage."""
        log.warning("PBT member %03d: %s; not replacing this interval", self.cfg.policy_idx, reason)
        self.workspace.append_lineage(self.cfg.policy_idx, {
            "event": "rejected", "time": time.time(), "frame": own.frame, "iteration": own.iteration,
            "donor": decision.donor, "donor_iteration": decision.donor_iteration, "reason": reason})

    def restart(self, decision: Decision, own: Record, state: Optional[dict], entry: dict, rng: Any) -> None:
        """Save the chosen state into this run's folder and re-execute the process from it."""
        algo = self.algo
        if state is None:
            state = checkpoint.published_state(algo)
        # as in place: the donor's weights, but this member's own frame and epoch budget
        state = {**state, "frame": algo.frame, "epoch": algo.epoch_num}
        path = os.path.abspath(os.path.join(algo.nn_dir, f"pbt_{own.iteration:06d}_from_{decision.donor:03d}.pth"))
        with open(path, "wb") as f:
            checkpoint.save(state, f)
        for prefix in ("pbt_", "restore_"):  # PBT's own copies only: rl_games' best and last checkpoints stay
            checkpoint.prune(algo.nn_dir, prefix, KEEP_NN_COPIES)
        entry["weights_sha256"] = checkpoint.model_digest(state["model"])
        self.workspace.append_lineage(self.cfg.policy_idx, entry)
        argv = restart_argv(self.argv, path, rng.randrange(1, 2**31), decision.hyperparameters)
        argv = set_override(argv, "+agent.params.config.full_experiment_name", algo.experiment_name)
        log.info("PBT member %03d: %s from %03d, restarting at frame %d, changed %s",
                 self.cfg.policy_idx, entry["event"], decision.donor, own.frame, _fmt_changed(decision.changed))
        if algo.writer is not None:
            algo.writer.flush()
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish()  # the restarted process resumes the same run id
        self.publisher.flush()  # os.execv does not wait for threads
        sys.stdout.flush()
        sys.stderr.flush()
        self.exec_fn(sys.executable, [sys.executable, *argv])

    def _log_tick(self, own: Record, known: list[float], reason: str) -> None:
        """One log line per tick, and the ``pbt/*`` TensorBoard scalars; ``known``: living members' objectives."""
        shown = "none" if own.objective is None else f"{own.objective:.4g}"
        log.info("PBT member %03d iteration %d frame %d: objective %s, %d/%d members ranked: %s",
                 self.cfg.policy_idx, own.iteration, own.frame, shown, len(known), self.cfg.num_policies, reason)
        writer = self.algo.writer
        if writer is None:
            return
        if own.objective is not None:
            writer.add_scalar("pbt/objective", own.objective, own.frame)
        if known:
            writer.add_scalar("pbt/population_best", max(known), own.frame)
            writer.add_scalar("pbt/population_mean", statistics.mean(known), own.frame)
        writer.add_scalar("pbt/replacements", self.replacements, own.frame)
        for key, value in own.hyperparameters.items():
            writer.add_scalar(f"pbt/{short_name(key)}", value, own.frame)


def short_name(key: str) -> str:
    """``learning_rate`` for ``agent.params.config.learning_rate``, ``rewards.lift.weight`` for an env reward weight."""
    return key.split(".", 1)[1] if key.startswith("env.") else key.rsplit(".", 1)[-1]


def _fmt_changed(changed: Mapping[str, tuple[float, float]]) -> str:
    return ", ".join(f"{short_name(k)} {a:.4g}->{b:.4g}" for k, (a, b) in changed.items()) or "nothing"
