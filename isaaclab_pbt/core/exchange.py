"""PBT in memory: the members of one process hand each other their records and states at each interval.

In a one-process population (``agent.pbt.mode=shared``) every member ticks at the same interval
boundary, since their blocks of one env step together. At the tick each member puts its record and
its state (the snapshot it also publishes) here and waits for the others; then every member ranks
the same records of this interval, and an underperformer continues from its donor's state as it is
in memory: no file is read on the way. Members still publish to the workspace, so the results tools
and a resume see the same layout as for one process per member.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .workspace import Record


class Exchange:
    """Records and states of ``num_members`` members of one process, round by round (one round per interval).

    Args:
        num_members: the members that tick together; each round waits for all of them.
        timeout: seconds a member waits for the others before the population is declared stuck.
    """

    def __init__(self, num_members: int, timeout: float = 600.0):
        self._barrier = threading.Barrier(num_members, timeout=timeout)
        self._lock = threading.Lock()
        self._records: dict[int, dict[int, Record]] = {}
        self._states: dict[int, dict[int, Any]] = {}

    def gather(self, own: Record, state: Any) -> dict[int, Record]:
        """Add this member's record and state for its interval, wait for every member, return all the records."""
        round_ = own.iteration
        with self._lock:
            self._records.setdefault(round_, {})[own.policy_idx] = own
            self._states.setdefault(round_, {})[own.policy_idx] = state
            for old in [r for r in self._records if r < round_ - 1]:  # a round is read until the next one starts
                del self._records[old], self._states[old]
        self._barrier.wait()
        with self._lock:
            return dict(self._records[round_])

    def state(self, idx: int, iteration: int) -> Optional[Any]:
        """Member ``idx``'s state of round ``iteration``, or ``None`` when it has none."""
        with self._lock:
            return self._states.get(iteration, {}).get(idx)

    def abort(self) -> None:
        """Release every waiting member with an error (one failed: the others must not wait for ever)."""
        self._barrier.abort()
