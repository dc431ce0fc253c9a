"""The objective: one float per member and interval, read from the env ``infos`` of every step.

``episode.Curriculum/adr`` names ``infos["episode"]["Curriculum/adr"]``: the path is split on dots,
and at each level the longest run of parts that is a key wins, so keys may contain ``/`` or ``.``.
Values may be Python numbers, numpy scalars or tensors on any device (reduced to their mean);
NaN and inf are ignored. The interval's value is the mean of all values seen (configurable), not
the last raw value, so one lucky step cannot crown a leader. A tensor's step value stays on its
device until the interval ends and all of them are read at once: a GPU member does not wait for
the GPU at every env step.
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
from typing import Any, Mapping, Optional

log = logging.getLogger(__name__)

_MISSING = object()
_NOT_FOUND = (_MISSING,)  # keys that no infos hold: the first lookup searches


def lookup(infos: Any, path: str) -> Any:
    """The value at ``path`` inside nested mappings, or a sentinel when absent."""
    return _lookup_keys(infos, path)[0]


def _lookup_keys(infos: Any, path: str) -> tuple[Any, tuple[Any, ...]]:
    """The value at ``path`` and the keys that led to it (the sentinel and keys that lead nowhere when absent)."""
    parts, keys = path.split("."), []
    node = infos
    while parts:
        if not isinstance(node, Mapping):
            return _MISSING, _NOT_FOUND
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in node:
                node, parts = node[key], parts[n:]
                keys.append(key)
                break
        else:
            return _MISSING, _NOT_FOUND
    return node, tuple(keys)


def to_float(value: Any) -> Optional[float]:
    """A finite float from a number, numpy scalar/array or tensor (mean of its elements); ``None`` otherwise."""
    if isinstance(value, bool):
        return float(value)
    if hasattr(value, "detach"):  # torch tensor, any device
        value = value.detach()
        if value.numel() == 0:
            return None
        value = value.float().mean().item()
    elif hasattr(value, "mean") and hasattr(value, "dtype"):  # numpy scalar or array
        if getattr(value, "size", 1) == 0:
            return None
        value = value.mean().item()
    if not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def key_paths(infos: Any, prefix: str = "") -> list[str]:
    """Every dotted path that leads to a leaf of ``infos`` (for the 'key not found' message)."""
    if not isinstance(infos, Mapping):
        return [prefix] if prefix else []
    paths = []
    for key, value in infos.items():
        paths += key_paths(value, f"{prefix}.{key}" if prefix else str(key))
    return paths


class ObjectiveTracker:
    """Collects the objective over one PBT interval and reduces it to a single float."""

    def __init__(self, path: str, reduce: str = "mean", warn_after: int = 1000):
        self.path = path
        self.reduce = reduce
        self.warn_after = warn_after
        self._values: list[Any] = []  # floats, and 0-d tensors not yet read (see _finite)
        self._steps_without_key = 0
        self._seen_key = False
        self._warned = False
        self._last_infos: Any = None
        self._keys: tuple[Any, ...] = _NOT_FOUND  # the keys that last led to the objective: tried first at every step

    def observe(self, infos: Any) -> None:
        """Record the objective from one step's ``infos`` if present and finite.

        It runs at every env step, so the common case costs a few dictionary reads: the keys that
        led to the objective last time, then a float appended as it is or a tensor kept on its device.
        """
        node = infos
        try:
            for key in self._keys:
                node = node[key]
        except (LookupError, TypeError):  # not where it was last time (or never found yet): search
            node, self._keys = _lookup_keys(infos, self.path)
            if node is _MISSING:
                self._missed(infos)
                return
            self._seen_key = True
        if type(node) is float:
            if math.isfinite(node):
                self._values.append(node)
            return
        if hasattr(node, "detach") and node.numel() > 0:
            node = node.detach()
            self._values.append((node if node.is_floating_point() else node.float()).mean())  # read at the interval's end
            return
        value = to_float(node)
        if value is not None:
            self._values.append(value)

    def _missed(self, infos: Any) -> None:
        """A step without the objective: after ``warn_after`` of them and none with it, warn once, naming the keys present."""
        self._last_infos = infos
        self._steps_without_key += 1
        if not self._seen_key and not self._warned and self._steps_without_key >= self.warn_after:
            self._warned = True
            available = ", ".join(key_paths(infos)) or "none"
            log.warning(
                "PBT objective '%s' not found in env infos after %d steps; this member will not be ranked. "
                "Keys present: %s", self.path, self._steps_without_key, available,
            )

    def _finite(self) -> list[float]:
        """The interval's finite values as floats, in order, the tensors among them read from their devices in one go.

        The tensors' library is the one that made them, already imported (the core imports none).
        """
        pending = [i for i, v in enumerate(self._values) if not isinstance(v, float)]
        if pending:
            by_device: dict[Any, list[int]] = {}
            for i in pending:
                by_device.setdefault(self._values[i].device, []).append(i)
            for indices in by_device.values():
                tensors = [self._values[i] for i in indices]
                stack = sys.modules[type(tensors[0]).__module__.split(".")[0]].stack
                for i, v in zip(indices, stack(tensors).tolist()):
                    self._values[i] = v
            self._values = [v for v in self._values if math.isfinite(v)]
        return self._values

    @property
    def seen_key(self) -> bool:
        """True once the objective's key appeared in any step's infos."""
        return self._seen_key

    def available(self) -> list[str]:
        """The key paths of the last infos that lacked the objective (what the user could have meant)."""
        return key_paths(self._last_infos) if self._last_infos is not None else []

    @property
    def missing(self) -> bool:
        """True once the key was looked for long enough and never seen."""
        return self._warned

    def value(self) -> Optional[float]:
        """The interval's objective, or ``None`` when nothing finite was seen."""
        values = self._finite()
        if not values:
            return None
        if self.reduce == "max":
            return max(values)
        if self.reduce == "last":
            return values[-1]
        try:
            return statistics.fmean(values)  # one exactly rounded sum: microseconds, where mean's fractions take a tenth of a millisecond
        except OverflowError:  # values near the float limit: mean's exact arithmetic does not overflow
            return statistics.mean(values)

    def best(self) -> Optional[float]:
        """The highest value seen this interval (what the noise guard compares), or ``None``."""
        values = self._finite()
        return max(values) if values else None

    def reset(self) -> None:
        """Start a new interval."""
        self._values.clear()
