"""Moving full training states between members through files, loading with ``weights_only=True``.

A state is what rl_games' ``get_full_state_weights`` returns (model, optimiser, normaliser
statistics, epoch, frame, env state such as a curriculum). Before publishing, values that the
restricted unpickler refuses (numpy scalars) become floats, and the ``_orig_mod.`` prefix that
``torch.compile`` adds is removed, so any member can load any other's state, compiled or not.
A published state is a copy on the CPU: it loads on any machine, and training may go on changing
the live tensors while a background thread writes it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO

import numpy as np
import torch

_COMPILED_PREFIX = "_orig_mod."


def _plain(value: Any) -> Any:
    """New containers of detached CPU tensor copies and Python scalars (what ``weights_only`` loading accepts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.clone() if value.device.type == "cpu" else value.to("cpu")  # clone: half the cost of to(copy=True)
    if isinstance(value, np.ndarray):
        return torch.tensor(value)  # a copy
    if isinstance(value, np.generic):
        return value.item()
    return value


def _strip_compiled(model_state: dict) -> dict:
    return {k[len(_COMPILED_PREFIX):] if k.startswith(_COMPILED_PREFIX) else k: v for k, v in model_state.items()}


def portable(state: dict) -> dict:
    """Plain data with compile-free model keys: loadable safely, by any member, compiled or not."""
    plain = _plain(state)
    return {**plain, "model": _strip_compiled(plain["model"])}


def published_state(algo: Any) -> dict:
    """A CPU copy of the agent's full training state, ready for ``torch.save`` and safe loading elsewhere."""
    return portable(algo.get_full_state_weights())


def save(state: dict, f: BinaryIO) -> None:
    torch.save(state, f)


# numpy scalars and dtypes: plain data that rl_games' own checkpoints contain (e.g. last_mean_rewards)
_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core (numpy 1.x: Isaac Lab 2.3)
_NUMPY_DATA = [_NUMPY_CORE.multiarray.scalar, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]


def load(source: str | BinaryIO, device: str | torch.device = "cpu") -> dict:
    """Load a training state from a path or an open file without executing any pickled code (tensors, containers, numbers only)."""
    with torch.serialization.safe_globals(_NUMPY_DATA):
        state = torch.load(source, map_location=device, weights_only=True)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ValueError("not a full training state (no model weights)")
    return state


def safe_copy(path: str, folder: str) -> str:
    """Load ``path`` safely and write it, as plain data, into ``folder``; returns the copy's path.

    rl_games restores checkpoints with an unrestricted unpickler; handing it this copy instead of
    a file from a shared folder means no code in that file can run.
    """
    state = portable(load(path))
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"restore_{os.path.basename(path)}")
    with open(target, "wb") as f:
        save(state, f)
    return target


def _tensors(value: Any, where: str):
    """``(name, tensor)`` for every tensor in a nested state."""
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{where}.{i}")


def _shapes(value: Any) -> dict[str, tuple]:
    return {name: tuple(t.shape) for name, t in _tensors(value, "")}


def check_fits(algo: Any, state: dict) -> None:
    """Raise ``ValueError`` naming the first problem unless ``state`` loads whole into ``algo``.

    Checked before any tensor is copied (``load_state_dict`` copies the matching tensors before it
    finds a mismatch): the same model and optimiser tensor names and shapes, and no NaN or inf anywhere.
    """
    check_fits_state({"model": _strip_compiled(algo.model.state_dict()), "optimizer": algo.optimizer.state_dict()}, state)


def check_fits_state(live: dict, state: dict) -> None:
    """:func:`check_fits` against a full state (``live``: its ``model`` and ``optimizer``) instead of an agent."""
    for name, tensor in _tensors(state, ""):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or inf values")
    for part in ("model", "optimizer"):
        if not isinstance(state.get(part), dict):
            raise ValueError(f"{part} is missing")
        mine, theirs = _shapes(live[part]), _shapes(state[part])
        if part == "optimizer":  # an optimiser's per-parameter state appears after its first step
            theirs = {k: v for k, v in theirs.items() if k in mine}
        if mine.keys() != theirs.keys():
            odd = sorted(mine.keys() ^ theirs.keys())
            raise ValueError(f"{part} tensors differ: {', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''}")
        wrong = [k for k in mine if mine[k] != theirs[k]]
        if wrong:
            raise ValueError(f"{part}.{wrong[0]} has shape {list(theirs[wrong[0]])}, this agent needs {list(mine[wrong[0]])}")


def prune(folder: str, prefix: str, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest ``<prefix>*.pth`` files in ``folder`` (PBT's own copies only); returns them."""
    try:
        with os.scandir(folder) as entries:
            found = sorted((e.stat(follow_symlinks=False).st_mtime_ns, e.path) for e in entries
                           if e.name.startswith(prefix) and e.name.endswith(".pth"))
    except OSError:  # the folder, or a file in it, went away meanwhile: nothing to prune this time
        return []
    doomed = [path for _, path in (found[:-keep] if keep > 0 else found)]
    for path in doomed:
        try:
            os.unlink(path)
        except OSError:
            pass
    return doomed


def load_into(algo: Any, state: dict) -> None:
    """Replace the agent's weights, optimiser, normalisers and env state by ``state``; keep its frame and epoch.

    Nothing is copied unless the whole state fits (:func:`check_fits` raises ``ValueError`` first).
    """
    check_fits(algo, state)
    live_keys = algo.model.state_dict().keys()
    if any(k.startswith(_COMPILED_PREFIX) for k in live_keys):
        state = {**state, "model": {_COMPILED_PREFIX + k: v for k, v in state["model"].items()}}
    algo.set_full_state_weights(state, set_epoch=False)


def model_digest(model_state: dict) -> str:
    """SHA-256 over the model's tensors (names and bytes), independent of compile prefixes and device."""
    h = hashlib.sha256()
    for name, tensor in sorted(_strip_compiled(model_state).items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
