"""Re-executing a training process with a donor's checkpoint and new hyperparameters (pure argv logic).

Every token the user gave is kept, in order; only the checkpoint, the seed and the overridden keys
are replaced or appended. This is what lets a restarted member come back with the same device,
task, env count, iteration budget and logging flags it was started with.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence


def _flag_value(token: str, flag: str) -> bool:
    return token == flag or token.startswith(flag + "=")


def _override_key(token: str) -> str:
    """``agent.x`` for the tokens ``agent.x=1``, ``+agent.x=1``, ``++agent.x=1`` and ``~agent.x``."""
    return token.split("=", 1)[0].lstrip("+~")


def get_flag(argv: Sequence[str], flag: str) -> Optional[str]:
    """The value of the last ``--flag=v`` or ``--flag v`` in ``argv`` (the one argparse keeps), or ``None``."""
    value = None
    for i, token in enumerate(argv):
        if token.startswith(flag + "="):
            value = token.split("=", 1)[1]
        elif token == flag and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def get_override(argv: Sequence[str], key: str) -> Optional[str]:
    """The value of the last override of ``key`` (with or without ``+``) in ``argv``, or ``None``."""
    for token in reversed(argv):
        if "=" in token and not token.startswith("~") and _override_key(token) == key.lstrip("+"):
            return token.split("=", 1)[1]
    return None


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


def set_override(argv: Sequence[str], key: str, value: object) -> list[str]:
    """``argv`` with the hydra-style override ``key=value`` replacing any earlier one for ``key``.

    ``key`` may start with ``+`` to add a key the config does not have yet.
    """
    text = repr(value) if isinstance(value, float) else str(value)
    kept = [t for t in argv if _override_key(t) != key.lstrip("+")]
    return kept + [f"{key}={text}"]


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
