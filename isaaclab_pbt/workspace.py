"""The shared workspace: every member's published weights, records and lineage, on plain files.

Layout (``<directory>/<workspace>``)::

    000/                      one folder per member (policy_idx, 3 digits)
        000012.pth            weights and optimiser state at PBT iteration 12
        000012.yaml           the record of iteration 12 (objective, frame, hyperparameters, ...)
        lineage.jsonl         append-only log of this member's replacements and mutations
        history.jsonl         append-only copy of every record (kept when old iterations are deleted)
    best/
        best.yaml             the best member's record, naming its checkpoint in this folder
        002_000012.pth        that checkpoint (a full rl_games state: play or deploy it as usual)

Writers never expose a partial file: they write a hidden temporary file, fsync it and rename it
over the final name (atomic on local filesystems and NFS alike, no file locks needed), weights
before the record that announces them. Readers trust nothing: records are parsed with the safe
YAML loader and checked field by field, paths come from the layout and never from a record, any
path that resolves outside the workspace is refused, and a bad file is skipped with one warning.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Callable, Optional

import yaml

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1 << 20
LINEAGE_FILE = "lineage.jsonl"
HISTORY_FILE = "history.jsonl"
BEST_DIR = "best"
BEST_FILE = "best.yaml"
_BEST_CHECKPOINT = re.compile(r"^\d{3}_\d{6}\.pth$")
_MEMBER_DIR = re.compile(r"^\d{3}$")
_RECORD_FILE = re.compile(r"^(\d{6})\.yaml$")


@dataclass
class Record:
    """What a member publishes at the end of a PBT interval."""

    policy_idx: int
    iteration: int
    frame: int
    objective: Optional[float]
    hyperparameters: dict[str, float]
    time: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_record(data: Any, policy_idx: Optional[int], iteration: Optional[int]) -> Record:
    """A :class:`Record` from parsed YAML or JSON, or ``ValueError`` saying what is wrong.

    ``policy_idx`` and ``iteration``, when given, must match the record's (its place in the layout).
    """
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    names = set(Record.__dataclass_fields__)
    if set(data) != names:
        raise ValueError(f"fields {sorted(data)} differ from {sorted(names)}")
    for name, expected in (("policy_idx", policy_idx), ("iteration", iteration)):
        value = data[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or expected not in (None, value):
            raise ValueError(f"{name} does not match the file's place in the workspace")
    if not isinstance(data["frame"], int) or isinstance(data["frame"], bool) or data["frame"] < 0:
        raise ValueError("frame is not a non-negative integer")
    objective = data["objective"]
    if objective is not None and not _is_number(objective):
        objective = None  # NaN/inf or junk: the member counts as not initialized
    hp = data["hyperparameters"]
    if not isinstance(hp, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in hp.items()):
        raise ValueError("hyperparameters must map names to finite numbers")
    if not _is_number(data["time"]) or not isinstance(data["pid"], int) or not isinstance(data["host"], str):
        raise ValueError("time/pid/host have the wrong types")
    return Record(**{**data, "objective": None if objective is None else float(objective)})


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that readers see the old file or the complete new one, never a part."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on directories; rename is still atomic
    finally:
        os.close(fd)


class Workspace:
    """Reads and writes one population's shared folder."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._warned: set[str] = set()

    # -- layout -------------------------------------------------------------------------------
    def member_dir(self, policy_idx: int) -> str:
        if not isinstance(policy_idx, int) or not 0 <= policy_idx <= 999:
            raise ValueError(f"policy_idx must be an integer in [0, 999], got {policy_idx!r}")
        return os.path.join(self.root, f"{policy_idx:03d}")

    def record_path(self, policy_idx: int, iteration: int) -> str:
        return os.path.join(self.member_dir(policy_idx), f"{iteration:06d}.yaml")

    def weights_path(self, policy_idx: int, iteration: int) -> str:
        return os.path.join(self.member_dir(policy_idx), f"{iteration:06d}.pth")

    def lineage_path(self, policy_idx: int) -> str:
        return os.path.join(self.member_dir(policy_idx), LINEAGE_FILE)

    def history_path(self, policy_idx: int) -> str:
        return os.path.join(self.member_dir(policy_idx), HISTORY_FILE)

    def inside(self, path: str) -> bool:
        """True when ``path`` resolves (symlinks followed) to a place inside the workspace."""
        real_root = os.path.realpath(self.root)
        return os.path.realpath(path).startswith(real_root + os.sep)

    def _warn(self, path: str, reason: str) -> None:
        key = f"{path}: {reason}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("PBT workspace: skipping %s (%s)", path, reason)

    # -- writing ------------------------------------------------------------------------------
    def publish(self, record: Record, save_weights: Callable[[BinaryIO], None]) -> None:
        """Write this member's weights, then the record that announces them."""
        folder = self.member_dir(record.policy_idx)
        os.makedirs(folder, exist_ok=True)
        if not self.inside(folder):
            raise RuntimeError(f"PBT workspace: {folder} resolves outside {self.root}; refusing to write there")
        atomic_write(self.weights_path(record.policy_idx, record.iteration), save_weights)
        text = yaml.safe_dump(asdict(record), sort_keys=True).encode()
        atomic_write(self.record_path(record.policy_idx, record.iteration), lambda f: f.write(text))

    def append_lineage(self, policy_idx: int, entry: dict[str, Any]) -> None:
        """Append one event (replacement or mutation) to the member's lineage log."""
        self._append_jsonl(self.lineage_path(policy_idx), entry)

    def append_history(self, record: Record) -> None:
        """Append a published record to the member's history, which cleanup never shortens."""
        self._append_jsonl(self.history_path(record.policy_idx), asdict(record))

    def _append_jsonl(self, path: str, entry: dict[str, Any]) -> None:
        """Append one JSON line and make it durable."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        line = json.dumps(entry, sort_keys=True, allow_nan=False) + "\n"
        with open(path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line cut by a crash: start ours on a fresh line
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def publish_best(self, record: Record) -> None:
        """Make ``record``'s published checkpoint the workspace's best: copy it, then swap the pointer.

        The pointer file is replaced atomically after the copy is complete, so a reader sees the
        previous best or the new one. Several members may publish at once, so each deletes only
        its own older copies, and keeps the one before the newest for readers still copying it.
        """
        folder = os.path.join(self.root, BEST_DIR)
        os.makedirs(folder, exist_ok=True)
        name = f"{record.policy_idx:03d}_{record.iteration:06d}.pth"
        with open(self.weights_path(record.policy_idx, record.iteration), "rb") as src:
            atomic_write(os.path.join(folder, name), lambda f: shutil.copyfileobj(src, f, 1 << 20))
        text = yaml.safe_dump({**asdict(record), "checkpoint": name}, sort_keys=True).encode()
        atomic_write(os.path.join(folder, BEST_FILE), lambda f: f.write(text))
        mine = sorted(n for n in os.listdir(folder) if _BEST_CHECKPOINT.match(n) and n.startswith(f"{record.policy_idx:03d}_"))
        for old in mine[:-2]:
            try:
                os.unlink(os.path.join(folder, old))
            except FileNotFoundError:
                pass

    def cleanup(self, policy_idx: int, keep: int) -> list[int]:
        """Delete this member's iterations older than its ``keep`` newest; returns the deleted ones.

        Others only ever read a member's newest record, and a publish takes a whole interval, so
        with ``keep >= 2`` no iteration that someone may be loading is removed. Temporary files left
        by a write that a crash cut short are removed too.
        """
        iterations = self.iterations(policy_idx)
        doomed = iterations[:-keep] if keep > 0 else iterations
        paths = [p for it in doomed for p in (self.weights_path(policy_idx, it), self.record_path(policy_idx, it))]
        # temporary files of writes cut short by a crash (only this member writes in its folder)
        paths += glob.glob(os.path.join(glob.escape(self.member_dir(policy_idx)), ".*.tmp"))
        for path in paths:
            try:
                os.unlink(path)
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                pass
        return doomed

    # -- reading ------------------------------------------------------------------------------
    def members(self) -> list[int]:
        """Member indices that have a folder in the workspace."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(int(n) for n in names if _MEMBER_DIR.match(n))

    def iterations(self, policy_idx: int) -> list[int]:
        """Iterations with a record file name in the member's folder, oldest first."""
        folder = self.member_dir(policy_idx)
        if not self.inside(folder):
            self._warn(folder, "resolves outside the workspace")
            return []
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(int(m.group(1)) for m in map(_RECORD_FILE.match, names) if m)

    def read_record(self, policy_idx: int, iteration: int) -> Optional[Record]:
        """The checked record, or ``None`` (with a warning) if it is missing, partial or hostile."""
        path = self.record_path(policy_idx, iteration)
        if not self.inside(path):
            self._warn(path, "resolves outside the workspace")
            return None
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(path, f"cannot be read: {e.strerror or e}")
            return None
        if len(raw) > MAX_RECORD_BYTES:
            self._warn(path, f"larger than {MAX_RECORD_BYTES} bytes")
            return None
        try:
            return _check_record(yaml.safe_load(raw), policy_idx, iteration)
        except (yaml.YAMLError, ValueError, TypeError, UnicodeDecodeError) as e:
            self._warn(path, f"not a valid record: {str(e).splitlines()[0]}")
            return None

    def latest(self, policy_idx: int) -> Optional[Record]:
        """The member's newest valid record, if any."""
        for it in reversed(self.iterations(policy_idx)):
            record = self.read_record(policy_idx, it)
            if record is not None:
                return record
        return None

    def population(self) -> dict[int, Record]:
        """Newest valid record of every member that has one."""
        records = {}
        for idx in self.members():
            record = self.latest(idx)
            if record is not None:
                records[idx] = record
        return records

    def checked_weights_path(self, policy_idx: int, iteration: int) -> Optional[str]:
        """The weights file of an iteration if it is a regular file inside the workspace."""
        path = self.weights_path(policy_idx, iteration)
        if not self.inside(path):
            self._warn(path, "resolves outside the workspace")
            return None
        if not os.path.isfile(path):
            self._warn(path, "missing or not a regular file")
            return None
        return path

    def lineage(self, policy_idx: int) -> list[dict[str, Any]]:
        """The member's lineage entries; unreadable lines (e.g. cut by a crash) are skipped."""
        return self._read_jsonl(self.lineage_path(policy_idx))

    def history(self, policy_idx: int) -> list[Record]:
        """Every record the member published, oldest first; invalid lines are skipped."""
        records = []
        path = self.history_path(policy_idx)
        for n, entry in enumerate(self._read_jsonl(path), 1):
            try:
                records.append(_check_record(entry, policy_idx, None))
            except (ValueError, TypeError) as e:
                self._warn(f"{path}:{n}", f"not a valid record: {e}")
        return records

    def best(self) -> Optional[tuple[Record, str]]:
        """The best member's record and checkpoint path, if a valid one was published."""
        folder = os.path.join(self.root, BEST_DIR)
        path = os.path.join(folder, BEST_FILE)
        if not self.inside(path):
            self._warn(path, "resolves outside the workspace")
            return None
        try:
            with open(path, "rb") as f:
                data = yaml.safe_load(f.read(MAX_RECORD_BYTES))
            name = data.pop("checkpoint")
            record = _check_record(data, None, None)
        except FileNotFoundError:
            return None
        except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError) as e:
            self._warn(path, f"not a valid best record: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            return None
        checkpoint = os.path.join(folder, str(name))
        if not _BEST_CHECKPOINT.match(str(name)) or not self.inside(checkpoint) or not os.path.isfile(checkpoint):
            self._warn(path, "names a checkpoint that is missing or outside the workspace")
            return None
        return record, checkpoint

    def _read_jsonl(self, path: str) -> list[dict[str, Any]]:
        if not self.inside(path):
            self._warn(path, "resolves outside the workspace")
            return []
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return []
        entries = []
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except ValueError:
                self._warn(f"{path}:{n}", "not a JSON line")
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries
