"""Hydra-style command-line overrides of the env and agent configs: ``agent.pbt.enabled=True``.

Values are parsed with OmegaConf's grammar (``1e-3`` is a float, ``True`` a bool, ``[1.1,2.0]`` a
list). As in Hydra, a key must already exist unless the token starts with ``+``; a typo fails
with the closest existing key. Keys of ``agent.pbt.mutation``, ``agent.pbt.bounds`` and ``agent.pbt.choices`` themselves
contain dots and are matched whole.
"""

from __future__ import annotations

import difflib
from typing import Any, MutableMapping, Sequence

from omegaconf import OmegaConf

from .config import flatten
from .errors import UsageError

_WHOLE_KEY_TABLES = ("pbt.mutation", "pbt.bounds", "pbt.choices")


class OverrideError(UsageError):
    """An override that does not fit the config; the message names the token."""


def parse_value(raw: str) -> Any:
    """A command-line value as OmegaConf reads it."""
    return OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]))["value"]


def is_override(token: str) -> bool:
    """True for ``key=value`` or ``+key=value`` tokens (not ``--flags``)."""
    return not token.startswith("-") and "=" in token


def apply_overrides(configs: MutableMapping[str, MutableMapping[str, Any]], tokens: Sequence[str]) -> None:
    """Apply each ``root.path=value`` token to ``configs[root]`` in place (roots: ``env``, ``agent``)."""
    for token in tokens:
        add = token.startswith("+")
        key, _, raw = token.lstrip("+").partition("=")
        root, _, path = key.partition(".")
        if root not in configs or not path:
            raise OverrideError(f"override '{token}': keys start with one of {', '.join(f'{r}.' for r in configs)}")
        _set(configs[root], path.split("."), parse_value(raw), add, token, root)


def _set(node: MutableMapping[str, Any], parts: list[str], value: Any, add: bool, token: str, where: str) -> None:
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key not in node:
            continue
        if n == len(parts):
            node[key] = value
            return
        if isinstance(node[key], MutableMapping):
            return _set(node[key], parts[n:], value, add, token, f"{where}.{key}")
    if not add:
        known = list(flatten(node, where + "."))
        hint = difflib.get_close_matches(f"{where}.{'.'.join(parts)}", known, n=1, cutoff=0.6)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        raise OverrideError(f"override '{token}': no such key in the config{extra} (prefix with '+' to add a new key)")
    if where.endswith(_WHOLE_KEY_TABLES):
        node[".".join(parts)] = value
        return
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, MutableMapping):
            raise OverrideError(f"override '{token}': '{part}' is a value, not a mapping")
    node[parts[-1]] = value
