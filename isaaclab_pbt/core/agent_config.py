"""The agent config of one member, owned in one place: loaded, overridden, read and written by one name.

A hyperparameter has one name from the YAML file to the live agent, its dotted path from the
config's root: ``agent.params.config.learning_rate`` (rl_games), ``agent.algorithm.learning_rate``
(rsl_rl), ``agent.agent.learning_rate`` (skrl). The same name is the whitelist key in
``agent.pbt.mutation``, the key in every published record, the command-line override
(``agent.algorithm.learning_rate=3e-4``) and the key a backend's ``learner`` module maps to the
running agent. This module is its only owner on the config side:

* :func:`load` reads an agent config file (safe YAML only);
* :func:`apply_overrides` applies command-line overrides in Hydra's grammar, parsed by Hydra's own
  parser: ``key=value`` changes an existing key, ``+key=value`` adds one, ``++key=value`` sets it
  either way, ``~key`` deletes it; ``1e-3`` is a float, ``True`` a bool, ``[1.1,2.0]`` a list,
  ``null`` None. A changed value keeps the type of the value it replaces, a typo fails with the
  closest existing key, and a sweep (``gamma=0.9,0.95``) is refused: a member trains one config.
  Keys of ``agent.pbt.mutation``, ``agent.pbt.bounds`` and ``agent.pbt.choices`` contain dots
  themselves and are matched whole;
* :func:`get_value` and :func:`set_value` read and write by name, in dicts and in Isaac Lab
  configclasses alike (``env.*`` names reach the env config);
* :func:`set_override` and :func:`get_override` write a value back as an override token, and
  :func:`restart_argv` builds a restarted member's command line from its own: every token the
  user gave is kept, in order, and only the checkpoint, the seed and the overridden names are
  replaced or appended, so it comes back with the same device, task, env count, budget and
  logging flags, and its new values.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Container, Mapping, MutableMapping, Optional, Sequence

import yaml

from .errors import ArgumentParser, UsageError

MISSING = object()
"""What :func:`get_value` returns for a name the config does not have."""

_WHOLE_KEY_TABLES = ("pbt.mutation", "pbt.bounds", "pbt.choices")


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
            node[name] = _typed(key, node.get(name, MISSING), value)


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
    if old is MISSING or old is None or new is None:
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


def load(path: str, section: str, library: str) -> dict:
    """The agent config in ``path`` (safe YAML: no tag runs code); it must hold a ``section:`` mapping."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"--agent: cannot read agent config {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get(section), dict):
        raise UsageError(f"--agent: {path} is not an {library} agent config (no '{section}:' mapping)")
    return cfg


def dump_yaml(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` as safe YAML, keys in their order (the run folder's ``params/*.yaml``)."""
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def parse_command_line(argv: Sequence[str], build: Callable[[bool], Any], embedded_tasks: Container[str],
                       example: str) -> tuple[Any, list[str]]:
    """A train or play command's flags and its ``key=value`` overrides; any other token is an error naming it.

    ``build(isaaclab)`` makes the parser, told whether ``--task`` names an Isaac Lab task (one not in
    ``embedded_tasks``), whose launcher flags it then adds. ``example`` is an override of the
    library's own layout, shown in the error.
    """
    argv = list(argv)
    task = ArgumentParser(add_help=False)
    task.add_argument("--task", default=None)
    name = task.parse_known_args(argv)[0].task
    args, rest = build(name is not None and name not in embedded_tasks).parse_known_args(argv)
    unknown = [t for t in rest if not is_override(t)]
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (overrides look like {example})")
    return args, rest


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-name view of nested mappings: ``{"a": {"b": 1}}`` becomes ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def roots(agent_cfg: Mapping[str, Any], env_cfg: Any = None) -> dict[str, Any]:
    """The configs that names start from: ``agent.*`` and ``env.*``.

    Without an ``env_cfg``, ``env.*`` names are read from the agent's ``params.config.env_config``,
    where the embedded tasks under rl_games keep theirs.
    """
    if env_cfg is None:
        env_cfg = ((agent_cfg.get("params") or {}).get("config") or {}).get("env_config") or {}
    return {"agent": agent_cfg, "env": env_cfg}


def _child(node: Any, name: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(name, MISSING)
    return getattr(node, name, MISSING) if node is not None and not isinstance(node, (str, int, float)) else MISSING


def _parent(configs: Mapping[str, Any], key: str) -> tuple[Any, str]:
    """The mapping or object holding the last part of a dotted name, and that part's name."""
    root, *parts = key.split(".")
    node = configs.get(root, MISSING)
    for part in parts[:-1]:
        node = _child(node, part)
        if node is MISSING:
            return None, parts[-1]
    return node, parts[-1]


def get_value(configs: Mapping[str, Any], key: str) -> Any:
    """The value named ``key`` (a dict entry or a configclass attribute), or :data:`MISSING`."""
    node, name = _parent(configs, key)
    return _child(node, name)


def set_value(configs: Mapping[str, Any], key: str, value: Any) -> None:
    """Write ``value`` where :func:`get_value` reads ``key``."""
    node, name = _parent(configs, key)
    if isinstance(node, MutableMapping):
        node[name] = value
    else:
        setattr(node, name, value)


def _override_key(token: str) -> str:
    """``agent.x`` for the tokens ``agent.x=1``, ``+agent.x=1``, ``++agent.x=1`` and ``~agent.x``."""
    return token.split("=", 1)[0].lstrip("+~")


def get_override(argv: Sequence[str], key: str) -> Optional[str]:
    """The value of the last override of ``key`` (with or without ``+``) in ``argv``, or ``None``."""
    for token in reversed(argv):
        if "=" in token and not token.startswith("~") and _override_key(token) == key.lstrip("+"):
            return token.split("=", 1)[1]
    return None


def set_override(argv: Sequence[str], key: str, value: object) -> list[str]:
    """``argv`` with the override ``key=value`` replacing any earlier one for ``key``.

    ``key`` may start with ``+`` to add a key the config does not have yet. A float is written
    with ``repr`` so that the restarted process reads back exactly the same number.
    """
    text = repr(value) if isinstance(value, float) else str(value)
    kept = [t for t in argv if _override_key(t) != key.lstrip("+")]
    return kept + [f"{key}={text}"]


def _flag_value(token: str, flag: str) -> bool:
    return token == flag or token.startswith(flag + "=")


def get_flag(argv: Sequence[str], flag: str) -> Optional[str]:
    """The value of the last ``--flag=v`` or ``--flag v`` in ``argv`` (the one argparse keeps), or ``None``."""
    value = None
    for i, token in enumerate(argv):
        if token.startswith(flag + "="):
            value = token.split("=", 1)[1]
        elif token == flag and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def set_flag(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value``, in either ``--flag=v`` or ``--flag v`` form."""
    out: list[str] = []
    skip_next = False
    for token in argv:
        if skip_next:
            skip_next = False
            continue
        if _flag_value(token, flag):
            skip_next = token == flag
            continue
        out.append(token)
    return out + [f"{flag}={value}"]


def restart_argv(
    argv: Sequence[str],
    checkpoint: str,
    seed: int,
    overrides: Mapping[str, object],
) -> list[str]:
    """The new command line (without the interpreter) of a member restarting from ``checkpoint``."""
    out = set_flag(argv, "--checkpoint", checkpoint)
    out = set_flag(out, "--seed", str(seed))
    for key, value in overrides.items():
        out = set_override(out, key, value)
    return out
