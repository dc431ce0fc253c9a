"""What every library's one-process driver shares: what the mode refuses, where it resumes, one thread per learner."""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional, Sequence

from ..core.config import PbtCfg
from ..core.errors import UsageError
from ..core.workspace import Workspace


def refuse_unshareable(pbt: PbtCfg, is_live: Callable[[str], bool]) -> None:
    """Whitelisted keys a one-process population cannot change, refused in one line before anything starts.

    ``env.*`` keys: the members share one env, whose reward weights are the same for every block.
    Restart-only keys: a restart re-executes the process, which is the whole population.
    """
    env_keys = [k for k in pbt.mutation if k.startswith("env.")]
    if env_keys:
        raise UsageError(f"agent.pbt.mode: 'shared' cannot whitelist env keys ({', '.join(env_keys)}): the members "
                         "share one env, whose reward weights are the same for every block; use agent.pbt.mode=processes")
    restart_only = [k for k in pbt.mutation if not is_live(k)]
    if restart_only:
        raise UsageError(f"agent.pbt.mode: 'shared' changes hyperparameters in place only, and {', '.join(restart_only)} "
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
