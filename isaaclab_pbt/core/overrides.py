"""Hydra command-line overrides of the env and agent configs: ``agent.pbt.enabled=True``.

Tokens are parsed by Hydra's own override parser, so the grammar is Hydra's: ``key=value``
changes an existing key, ``+key=value`` adds one, ``++key=value`` sets it either way, ``~key``
deletes it; ``1e-3`` is a float, ``True`` a bool, ``[1.1,2.0]`` a list, ``null`` None. A
changed value must have the type of the value it replaces (a number stays a number, a
flag stays True or False), a typo fails with the closest existing key, and a sweep
(``gamma=0.9,0.95``) is refused: a member trains one config. Keys of ``agent.pbt.mutation``,
``agent.pbt.bounds`` and ``agent.pbt.choices`` themselves contain dots and are matched whole.
"""

from __future__ import annotations

import difflib
from typing import Any, MutableMapping, Optional, Sequence

from .config import flatten
from .errors import UsageError

_WHOLE_KEY_TABLES = ("pbt.mutation", "pbt.bounds", "pbt.choices")
_MISSING = object()


class OverrideError(UsageError):
    """An override that does not fit the config; the message names the key and what is allowed."""


def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse(token: str) -> tuple[str, str, Any]:
    """``(kind, key, value)`` of one token; kind is ``change``, ``add``, ``force_add`` or ``del``."""
    from hydra.errors import HydraException

    try:
        override = _parser().parse_override(token)
    except HydraException as e:
        raise OverrideError(f"override '{token}': not valid Hydra override syntax ({str(e).splitlines()[0]})") from None
    if override.is_sweep_override():
        raise OverrideError(f"{override.key_or_group}: one value expected, got the sweep '{token.split('=', 1)[1]}' "
                            "(a member trains one config; quote a string that contains commas)")
    return override.type.name.lower(), override.key_or_group, override.value()


def parse_value(raw: str) -> Any:
    """A command-line value as Hydra reads it."""
    return parse(f"value={raw}")[2]


def is_override(token: str) -> bool:
    """True for ``key=value``, ``+key=value``, ``++key=value`` and ``~key`` tokens (not ``--flags``)."""
    return not token.startswith("-") and ("=" in token or token.startswith("~"))


def apply_overrides(configs: MutableMapping[str, MutableMapping[str, Any]], tokens: Sequence[str]) -> None:
    """Apply each token to ``configs[root]`` in place (roots: ``env``, ``agent``)."""
    for token in tokens:
        kind, key, value = parse(token)
        root, _, path = key.partition(".")
        if root not in configs or not path:
            raise OverrideError(f"override '{token}': keys start with one of {', '.join(f'{r}.' for r in configs)}")
        node, name = _locate(configs[root], path.split("."), root, kind in ("add", "force_add"))
        if node is None or (name not in node and kind in ("change", "del")):
            known = list(flatten(configs[root], root + "."))
            hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            raise OverrideError(f"{key}: no such key in the config{extra} (prefix with '+' to add a new key)")
        if kind == "del":
            if value is not None and node[name] != value:
                raise OverrideError(f"{key}: '~{key}={value}' deletes only when the value is {value!r}, it is {node[name]!r}")
            del node[name]
        elif kind == "add" and name in node:
            raise OverrideError(f"{key}: already in the config; drop the '+' to change it (or use '++' to set it either way)")
        else:
            node[name] = _typed(key, node.get(name, _MISSING), value)


def _locate(node: MutableMapping[str, Any], parts: list[str], where: str, create: bool
            ) -> tuple[Optional[MutableMapping[str, Any]], str]:
    """The mapping that holds (or will hold) the key ``parts`` and its name there; ``None`` when a parent is missing."""
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key not in node:
            continue
        if n == len(parts):
            return node, key
        if isinstance(node[key], MutableMapping):
            return _locate(node[key], parts[n:], f"{where}.{key}", create)
        break
    if where.endswith(_WHOLE_KEY_TABLES):
        return node, ".".join(parts)
    if not create:
        return (node, parts[0]) if len(parts) == 1 else (None, parts[-1])
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, MutableMapping):
            raise OverrideError(f"{where}.{part}: is a value ({child!r}), not a mapping that could hold '{parts[-1]}'")
        node, where = child, f"{where}.{part}"
    return node, parts[-1]


def _typed(key: str, old: Any, new: Any) -> Any:
    """``new`` in the type of the value it replaces, or an error naming the key, the type and the value."""
    if old is _MISSING or old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        raise OverrideError(f"{key}: must be True or False, got {new!r}")
    if isinstance(old, (int, float)):
        # YAML writes a float setting as 2 as often as 2.0: numbers replace numbers, and the
        # settings that must be integers are checked by their rules (values.py) once all is applied
        if isinstance(new, bool) or not isinstance(new, (int, float)):
            what = "an integer" if isinstance(old, int) else "a number"
            raise OverrideError(f"{key}: must be {what} (the config has {old!r}), got {new!r}")
        return int(new) if isinstance(old, int) and float(new).is_integer() else new
    if isinstance(old, str):
        if isinstance(new, str) or _is_number_text(old):
            return new
        raise OverrideError(f"{key}: must be a string (the config has {old!r}), got {new!r}")
    if isinstance(old, list) and not isinstance(new, list):
        raise OverrideError(f"{key}: must be a list such as [1, 2] (the config has {old!r}), got {new!r}")
    if isinstance(old, MutableMapping) and not isinstance(new, MutableMapping):
        raise OverrideError(f"{key}: is a group of settings ({', '.join(map(str, old))}); set one of them, e.g. {key}.{next(iter(old), 'x')}=...")
    return new


def _is_number_text(text: str) -> bool:
    """YAML 1.1 reads ``3e-4`` as a string: a number may replace it."""
    try:
        float(text)
    except ValueError:
        return False
    return True
