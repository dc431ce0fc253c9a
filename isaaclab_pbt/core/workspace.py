"""The shared workspace: every member's published weights, records and lineage, on plain files.

Layout (``<directory>/<workspace>``)::

    000/                      one folder per member (policy_idx, 3 digits; more above 1000 members)
        000012.pth            weights and optimiser state at PBT iteration 12
        000012.yaml           the record of iteration 12 (objective, frame, hyperparameters, ...)
        lineage.jsonl         append-only log of this member's replacements and mutations
        history.jsonl         append-only copy of every record (kept when old iterations are deleted)
    best/
        best.yaml             the best member's record, naming its checkpoint in this folder
        002_000012.pth        that checkpoint (a full rl_games state: play or deploy it as usual)

Writers never expose a partial file: they write a hidden temporary file, fsync it and rename it
over the final name (atomic on local filesystems and NFS alike, no file locks needed), weights
before the record that announces them. A member publishes from a background thread
(:class:`BackgroundPublisher`), one state at a time and in that order, so training does not wait
for the disk.

Records are JSON, which is also YAML (floats are written so that YAML 1.1 readers type them as
floats too). Readers trust nothing: a record is parsed as JSON, or else with the safe YAML loader
(older and hand-written files), and checked field by field; paths come from the layout and never
from a record, any path that resolves outside the workspace is refused, and a bad file is skipped
with one warning. A scan re-reads only what changed since the previous one: a member folder whose
mtime did not move is not listed again, and a record whose inode, mtime and size did not move is
not parsed again. Both are trusted only once their mtime is :data:`SETTLED_NS` old, since a change
within one tick of the filesystem clock would not move it.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import glob
import itertools
import json
import logging
import math
import os
import queue
import re
import shutil
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Callable, Optional

import yaml

from .errors import UsageError

log = logging.getLogger(__name__)

BEST_READ_ATTEMPTS = 5
"""Times :meth:`Workspace.best` reads a pointer that moved while it looked for the checkpoint."""
MAX_RECORD_BYTES = 1 << 20
LINEAGE_FILE = "lineage.jsonl"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
BEST_DIR = "best"
BEST_FILE = "best.yaml"
SETTLED_NS = 2_000_000_000
"""Age of an mtime after which any later change moves it (coarse kernel clocks, FAT's 2 s, small NFS skew)."""
_BEST_CHECKPOINT = re.compile(r"^(\d{3,})_(\d{6,})\.pth$")
_MEMBER_DIR = re.compile(r"^\d{3,}$")
_RECORD_FILE = re.compile(r"^(\d{6,})\.yaml$")
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
MAX_JSONL_BYTES = 256 << 20
"""A history or lineage larger than this is not read (a planted huge file must not exhaust memory)."""
STALE_TMP_S = 60
"""Age after which a temporary file in best/ is a leftover of a killed writer, not a live one."""


def _user_mode(mode: int) -> int:
    current = os.umask(0)
    os.umask(current)
    return mode & ~current


FILE_MODE = _user_mode(0o666)
"""Files are created as ``open`` would (the user's umask), readable by a shared folder's other users."""
_HOST = socket.gethostname().replace(os.sep, "_")  # in temporary names: members on several hosts share best/


_HELD_LOCKS: dict[str, int] = {}
"""Member folder locks this process holds (lock file path -> descriptor), for the process's life."""


def member_width(num_policies: int) -> int:
    """Digits of a member folder name: 3 (Isaac Lab's layout) up to 1000 members, more above."""
    return max(3, len(str(num_policies - 1)))


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
    run: str = ""
    """Identity of the member run that wrote it (kept across PBT restarts and resumes); empty in older records."""
    library: str = ""
    """The RL library that trains the member (``rl_games``, ``rsl_rl``, ``skrl``); empty in older records."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_record(data: Any, policy_idx: Optional[int], iteration: Optional[int]) -> Record:
    """A :class:`Record` from parsed YAML or JSON, or ``ValueError`` saying what is wrong.

    ``policy_idx`` and ``iteration``, when given, must match the record's (its place in the layout).
    """
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    names = set(Record.__dataclass_fields__)
    optional = {"run", "library"}  # records of older versions lack them
    if not names - optional <= set(data) <= names:
        raise ValueError(f"fields {sorted(data)} differ from {sorted(names)}")
    if not isinstance(data.get("run", ""), str) or not isinstance(data.get("library", ""), str):
        raise ValueError("run and library must be strings")
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


_quote = json.encoder.encode_basestring_ascii  # a JSON string literal, in C: a record is written at every publish


def _json_value(value: Any) -> str:
    """JSON text that YAML 1.1 readers (PyYAML) type alike: a float always has a dot (``1.0e-05``, not ``1e-05``)."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} in a record")
        mantissa, e, exponent = repr(value).partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
    if kind is str:
        return _quote(value)
    if kind is int:
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_quote(str(k))}: {_json_value(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, float):  # a float subclass (numpy's float64)
        return _json_value(float(value))
    return json.dumps(value)


def record_text(data: dict[str, Any]) -> bytes:
    """A record file's content: one JSON object, a field per line, readable as YAML too."""
    return ("{\n" + ",\n".join(f"  {_quote(k)}: {_json_value(v)}" for k, v in sorted(data.items())) + "\n}\n").encode()


def parse_record_text(raw: bytes) -> Any:
    """JSON first (fast), else safe YAML (records written before they were JSON, or by hand)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return yaml.load(raw, Loader=_SafeLoader)


def _temp_name(path: str) -> str:
    """A temporary name beside ``path``, unique to this host, process and thread (the writers of ``best/``)."""
    return os.path.join(os.path.dirname(path),
                        f".{os.path.basename(path)}.{_HOST}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write(path: str, data: bytes | Callable[[BinaryIO], None], sync_dir: bool = True) -> None:
    """Write ``path`` so that readers see the old file or the complete new one, never a part.

    ``data`` is the content, or a function that writes it to the open file. ``sync_dir=False``
    leaves the folder's fsync to the caller's next write there: a folder's renames reach the disk in
    the order they were made (the journal of ext4 and XFS; NFS commits each one on the server), so
    one fsync after the last makes them all durable, and none lands without those before it.
    """
    folder = os.path.dirname(path) or "."
    tmp = _temp_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # O_EXCL follows no link planted under the name
    try:
        fd = os.open(tmp, flags, FILE_MODE)
    except FileExistsError:  # left by a killed writer whose process id this one reuses
        os.unlink(tmp)
        fd = os.open(tmp, flags, FILE_MODE)
    try:
        with open(fd, "wb") as f:  # closes fd, also on failure
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        _fsync_dir(folder)


def _link_regular(src: str, dst: str, sync_dir: bool = True) -> bool:
    """Hard-link the regular file ``src`` as ``dst``, atomically; False where links are not possible (then copy).

    A published checkpoint is never changed in place (a new one replaces it), so a link is as good
    as a copy and costs no second write of the checkpoint, which at GPU scale is many megabytes.
    A planted link at ``src`` is linked as a link, found here, and refused.
    """
    folder = os.path.dirname(dst)
    tmp = _temp_name(dst)
    try:
        os.link(src, tmp, follow_symlinks=False)
    except OSError:  # a filesystem without hard links, another device, a missing or foreign file
        return False
    try:
        if not stat.S_ISREG(os.lstat(tmp).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.replace(tmp, dst)  # does nothing when dst is already this file (the same checkpoint published again)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    if sync_dir:
        _fsync_dir(folder)
    return True


def _open_regular(path: str) -> int:
    """A read descriptor of ``path`` if it is a regular file, never a link's target or a FIFO (which would block).

    Raises ``OSError`` otherwise (``ELOOP`` for a link, ``EINVAL`` for a special file).
    """
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def _open_own(path: str, flags: int) -> int:
    """A descriptor of the regular file ``path`` for writing, created if missing.

    A link, FIFO or device planted under the name is never followed or opened for use: it is
    replaced by a new file in its place (warned), so nothing is written outside the workspace.
    """
    flags |= os.O_CREAT | _NOFOLLOW | _NONBLOCK
    for attempt in range(2):
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as e:
            if e.errno != errno.ELOOP or attempt:
                raise
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            if attempt:
                break
        log.warning("PBT workspace: %s is not a regular file (a link or special file was planted); replacing it", path)
        os.unlink(path)
    raise OSError(errno.EINVAL, f"{path} is not a regular file")


def _unlink_quietly(path: str) -> None:
    """Unlink ``path``; one already gone (or a folder, or not ours to delete) is left as it is."""
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        pass


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
    """Reads and writes one population's shared folder.

    ``num_policies`` fixes the width of member folder names (members pass it); readers that do not
    know it (status, lineage, plot, export) use the folders they find, of any width.
    """

    def __init__(self, root: str, num_policies: Optional[int] = None):
        if num_policies is not None and (not isinstance(num_policies, int) or num_policies < 1):
            raise ValueError(f"num_policies must be a positive integer, got {num_policies!r}")
        self.root = os.path.abspath(root)
        self._width = None if num_policies is None else member_width(num_policies)
        self._found: dict[int, str] = {}  # member folder names seen in the root (when the width is unknown)
        self._listings: dict[str, tuple[tuple[int, int], list[int]]] = {}  # folder -> ((inode, mtime), iterations)
        self._records: dict[str, dict[int, tuple[tuple[int, int, int], Optional[Record]]]] = {}  # folder -> iteration -> (key, record)
        self._jsonl: dict[str, _JsonLines] = {}  # path -> what was read of it
        self._generations = itertools.count()
        self._histories: dict[str, tuple[int, int, list[Record]]] = {}  # path -> (generation, lines checked, records)
        self._warned: set[str] = set()
        self._best_copies: dict[int, list[tuple[int, str]]] = {}  # member -> its copies in best/, oldest first

    # -- layout -------------------------------------------------------------------------------
    def member_dir(self, policy_idx: int) -> str:
        if not isinstance(policy_idx, int) or isinstance(policy_idx, bool) or policy_idx < 0:
            raise ValueError(f"policy_idx must be a non-negative integer, got {policy_idx!r}")
        if self._width is not None:
            return os.path.join(self.root, f"{policy_idx:0{self._width}d}")
        if policy_idx not in self._found:
            self.members()
        return os.path.join(self.root, self._found.get(policy_idx, f"{policy_idx:03d}"))

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
        self._real_folder(self.member_dir(record.policy_idx))  # a link planted as the member folder is replaced, never followed
        atomic_write(self.weights_path(record.policy_idx, record.iteration), save_weights, sync_dir=False)
        atomic_write(self.record_path(record.policy_idx, record.iteration), record_text(vars(record)))

    def append_lineage(self, policy_idx: int, entry: dict[str, Any]) -> None:
        """Append one event (replacement or mutation) to the member's lineage log."""
        self._append_jsonl(self.lineage_path(policy_idx), entry)

    def append_history(self, record: Record) -> None:
        """Append a published record to the member's history, which cleanup never shortens."""
        self._append_jsonl(self.history_path(record.policy_idx), vars(record))

    def _real_folder(self, folder: str) -> str:
        """``folder``, created if missing; a link or other non-folder planted there is replaced by a folder (warned).

        Writes then never leave the workspace through a planted link, whatever it points to.
        """
        try:
            st = os.lstat(folder)
            if stat.S_ISDIR(st.st_mode):
                return folder
            log.warning("PBT workspace: %s is not a folder (a link or file was planted); replacing it", folder)
            os.unlink(folder)
        except FileNotFoundError:
            pass
        os.makedirs(folder, exist_ok=True)
        return folder

    def _append_jsonl(self, path: str, entry: dict[str, Any]) -> None:
        """Append one JSON line and make it durable; a link planted under the name is replaced, never followed."""
        self._real_folder(os.path.dirname(path))
        line = (json.dumps(entry, sort_keys=True, allow_nan=False) + "\n").encode()
        fd = _open_own(path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut by a crash: start ours on a fresh line
                line = b"\n" + line
            with memoryview(line) as rest:
                while rest:
                    rest = rest[os.write(fd, rest):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def publish_best(self, record: Record) -> None:
        """Make ``record``'s published checkpoint the workspace's best: link (or copy) it, then swap the pointer.

        The pointer file is replaced atomically after the checkpoint is in place, so a reader sees
        the previous best or the new one. Several members may publish at once, so each deletes only
        its own older copies, and keeps the one before the newest for readers still copying it.
        """
        folder = self._real_folder(os.path.join(self.root, BEST_DIR))
        name = f"{os.path.basename(self.member_dir(record.policy_idx))}_{record.iteration:06d}.pth"
        weights = self.weights_path(record.policy_idx, record.iteration)
        if not _link_regular(weights, os.path.join(folder, name), sync_dir=False):
            with os.fdopen(_open_regular(weights), "rb") as src:
                atomic_write(os.path.join(folder, name), lambda f: shutil.copyfileobj(src, f, 1 << 20), sync_dir=False)
        atomic_write(os.path.join(folder, BEST_FILE), record_text({**vars(record), "checkpoint": name}))
        copies = self._best_copies.get(record.policy_idx)
        if copies is None:  # the first time: what earlier processes of this member left (best/ holds every member's)
            copies = sorted((int(m.group(2)), m.group(0)) for m in map(_BEST_CHECKPOINT.match, os.listdir(folder))
                            if m and int(m.group(1)) == record.policy_idx)
        elif (record.iteration, name) not in copies:
            copies.append((record.iteration, name))
        for _, old in copies[:-2]:
            try:
                os.unlink(os.path.join(folder, old))
            except FileNotFoundError:
                pass
        self._best_copies[record.policy_idx] = copies[-2:]

    def cleanup(self, policy_idx: int, keep: int, run: Optional[str] = None) -> list[int]:
        """Delete this member's iterations older than its ``keep`` newest; returns the deleted ones.

        Only iterations whose record is valid (and, given ``run``, written by that run) count and are
        deleted: files that merely look like records (junk, a planted high iteration) and another
        run's records neither push this run's out nor get deleted.
        Others only ever read a member's newest record, and a publish takes a whole interval, so
        with ``keep >= 2`` no iteration that someone may be loading is removed. Temporary files left
        by a write that a crash cut short are removed too (only this member writes in its folder).
        """
        records = {it: self.read_record(policy_idx, it) for it in self.iterations(policy_idx)}
        valid = [it for it, r in records.items() if r is not None and run in (None, r.run)]
        doomed = valid[:-keep] if keep > 0 else valid
        self.delete_iterations(policy_idx, doomed)
        for path in glob.glob(os.path.join(glob.escape(self.member_dir(policy_idx)), ".*.tmp")):
            _unlink_quietly(path)
        return doomed

    def delete_iterations(self, policy_idx: int, iterations: list[int]) -> None:
        """Delete these iterations of a member, weights before record.

        A crash between the two leaves a record, which the next cleanup finds, never weights that nothing names.
        """
        for it in iterations:
            _unlink_quietly(self.weights_path(policy_idx, it))
            _unlink_quietly(self.record_path(policy_idx, it))

    def remove_leftovers(self, policy_idx: int) -> list[str]:
        """At a member's start: delete the temporary files killed writes left; returns their paths.

        In the member's own folder every one is a leftover; in ``best/``, which all members write,
        only those older than :data:`STALE_TMP_S` are (a younger one may be another member's live write).
        """
        own = glob.glob(os.path.join(glob.escape(self.member_dir(policy_idx)), ".*.tmp"))
        shared = glob.glob(os.path.join(glob.escape(os.path.join(self.root, BEST_DIR)), ".*.tmp"))
        now = time.time()
        removed = []
        for path in own + shared:
            try:
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and (path in own or now - st.st_mtime > STALE_TMP_S):
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
        return removed

    def backfill_history(self, policy_idx: int) -> list[int]:
        """Append the member's valid records newer than its history's last line (a kill between the two); returns them."""
        history = self.history(policy_idx)
        last = max((r.iteration for r in history), default=-1)
        missing = [it for it in self.iterations(policy_idx) if it > last]
        added = []
        for it in missing:
            record = self.read_record(policy_idx, it)
            if record is not None:
                self.append_history(record)
                added.append(it)
        return added

    def lock(self, policy_idx: int) -> int:
        """Hold an exclusive lock on the member's folder for this process's life; returns its descriptor.

        Raises ``BlockingIOError`` when another process holds it (two processes given one policy_idx).
        ``flock`` is advisory and local: on NFS it needs the server's lock support (NFSv4, or lockd for v3).
        """
        path = os.path.join(self._real_folder(self.member_dir(policy_idx)), LOCK_FILE)
        if path in _HELD_LOCKS:  # this process holds it already (a second observer for the same member)
            return _HELD_LOCKS[path]
        fd = _open_own(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        _HELD_LOCKS[path] = fd
        return fd

    # -- reading ------------------------------------------------------------------------------
    def members(self) -> list[int]:
        """Member indices that have a folder in the workspace (names of 3 or more digits)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        found: dict[int, str] = {}
        for name in sorted(names, key=len):  # two names for one index: the wider layout wins
            if _MEMBER_DIR.match(name):
                found[int(name)] = name
        self._found = found
        return sorted(found)

    def _folder(self, policy_idx: int) -> Optional[tuple[str, os.stat_result]]:
        """The member's folder and its status, or ``None`` if it is missing or resolves outside (warned).

        A folder that is not a symbolic link lies inside (it is a name in the root), so one
        ``lstat`` replaces resolving the whole path.
        """
        folder = self.member_dir(policy_idx)
        try:
            st = os.lstat(folder)
            if stat.S_ISLNK(st.st_mode):
                if not self.inside(folder):
                    self._warn(folder, "resolves outside the workspace")
                    return None
                st = os.stat(folder)
        except OSError:
            return None
        return folder, st

    def _iterations_in(self, folder: str, st: os.stat_result) -> list[int]:
        key = (st.st_ino, st.st_mtime_ns)
        cached = self._listings.get(folder)
        if cached is not None and cached[0] == key:
            return list(cached[1])
        listed_at = time.time_ns()
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        iterations = sorted(int(m.group(1)) for m in map(_RECORD_FILE.match, names) if m)
        if listed_at - st.st_mtime_ns > SETTLED_NS:
            self._listings[folder] = (key, iterations)
        else:
            self._listings.pop(folder, None)
        listed = set(iterations)  # forget the records of deleted iterations
        self._records[folder] = {it: v for it, v in self._records.get(folder, {}).items() if it in listed}
        return list(iterations)

    def iterations(self, policy_idx: int) -> list[int]:
        """Iterations with a record file name in the member's folder, oldest first."""
        checked = self._folder(policy_idx)
        return [] if checked is None else self._iterations_in(*checked)

    def _read_in(self, folder: str, policy_idx: int, iteration: int) -> Optional[Record]:
        path = os.path.join(folder, f"{iteration:06d}.yaml")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(path, f"cannot be read: {e.strerror or e}")
            return None
        linked = stat.S_ISLNK(st.st_mode)
        if linked and not self.inside(path):
            self._warn(path, "resolves outside the workspace")
            return None
        if not linked and not stat.S_ISREG(st.st_mode):
            self._warn(path, "not a regular file")
            return None
        cached = self._records.get(folder, {}).get(iteration)
        if not linked and cached is not None and cached[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            hit = cached[1]  # a copy: callers may change what they get
            return None if hit is None else replace(hit, hyperparameters=dict(hit.hyperparameters))
        read_at = time.time_ns()
        try:
            # a link swapped in since lstat is refused, a pipe does not block
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | (0 if linked else _NOFOLLOW))
            try:
                st = os.fstat(fd)  # of the file read, in case it was replaced since lstat
                if not stat.S_ISREG(st.st_mode):
                    self._warn(path, "not a regular file")
                    return None
                raw = os.read(fd, min(st.st_size, MAX_RECORD_BYTES) + 1)
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(path, f"cannot be read: {e.strerror or e}")
            return None
        record = None
        if len(raw) > MAX_RECORD_BYTES:
            self._warn(path, f"larger than {MAX_RECORD_BYTES} bytes")
        else:
            try:
                record = _check_record(parse_record_text(raw), policy_idx, iteration)
            except (yaml.YAMLError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
                self._warn(path, f"not a valid record: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        if not linked and read_at - st.st_mtime_ns > SETTLED_NS:
            self._records.setdefault(folder, {})[iteration] = ((st.st_ino, st.st_mtime_ns, st.st_size), record)
        return record

    def read_record(self, policy_idx: int, iteration: int) -> Optional[Record]:
        """The checked record, or ``None`` (with a warning) if it is missing, partial or hostile."""
        checked = self._folder(policy_idx)
        return None if checked is None else self._read_in(checked[0], policy_idx, iteration)

    def latest(self, policy_idx: int) -> Optional[Record]:
        """The member's newest valid record, if any."""
        checked = self._folder(policy_idx)
        if checked is None:
            return None
        for it in reversed(self._iterations_in(*checked)):
            record = self._read_in(checked[0], policy_idx, it)
            if record is not None:
                return record
        return None

    def population(self, skip: Optional[int] = None) -> dict[int, Record]:
        """Newest valid record of every member that has one; ``skip``: a member not read (the caller, who knows its own)."""
        records = {}
        for idx in self.members():
            record = None if idx == skip else self.latest(idx)
            if record is not None:
                records[idx] = record
        return records

    def checked_weights_path(self, policy_idx: int, iteration: int) -> Optional[str]:
        """The weights file of an iteration if it is a regular file inside the workspace."""
        path = self.weights_path(policy_idx, iteration)
        try:
            st = os.lstat(path)
        except OSError as e:
            self._warn(path, f"cannot be read: {e.strerror or e}")
            return None
        if not stat.S_ISREG(st.st_mode):  # a link (wherever it points), a FIFO or a device
            self._warn(path, "not a regular file")
            return None
        return path

    def open_weights(self, policy_idx: int, iteration: int) -> Optional[BinaryIO]:
        """The weights file of an iteration, open for reading, if it is a regular file (``None``, warned, if not).

        Opened without following a link or blocking on a FIFO, so what is read is what was checked,
        even if the name is swapped for a link meanwhile.
        """
        path = self.weights_path(policy_idx, iteration)
        try:
            return os.fdopen(_open_regular(path), "rb")
        except OSError as e:
            self._warn(path, "not a regular file" if e.errno in (errno.ELOOP, errno.EINVAL) else f"cannot be read: {e.strerror or e}")
            return None

    def lineage(self, policy_idx: int) -> list[dict[str, Any]]:
        """The member's lineage entries; unreadable lines (e.g. cut by a crash) are skipped."""
        return self._read_jsonl(self.lineage_path(policy_idx))

    def history(self, policy_idx: int) -> list[Record]:
        """Every record the member published, oldest first; invalid lines are skipped.

        Ranking at equal frames reads every member's history at every tick: only the lines appended
        since the last call are checked (see :meth:`_read_jsonl`).
        """
        path = self.history_path(policy_idx)
        entries = self._read_jsonl(path)
        read = self._jsonl.get(path)
        generation, complete = (read.generation, len(read.entries)) if read is not None else (-1, 0)
        cached = self._histories.get(path)
        seen, checked = (cached[1], cached[2]) if cached and cached[0] == generation else (0, [])
        checked = checked + self._records_of(path, policy_idx, entries[seen:complete], seen)
        self._histories[path] = (generation, complete, checked)
        return checked + self._records_of(path, policy_idx, entries[complete:], complete)  # a last line still being written

    def _records_of(self, path: str, policy_idx: int, entries: list[dict[str, Any]], first: int) -> list[Record]:
        records = []
        for n, entry in enumerate(entries, first + 1):
            try:
                records.append(_check_record(entry, policy_idx, None))
            except (ValueError, TypeError) as e:
                self._warn(f"{path}:{n}", f"not a valid record: {e}")
        return records

    def best(self) -> Optional[tuple[Record, str]]:
        """The best member's record and checkpoint path, if a valid one was published.

        A reader slowed down between reading the pointer and opening its checkpoint may find that
        checkpoint already replaced (members keep only their two newest copies): it then reads the
        pointer again, which names a newer copy, rather than report that there is no best.
        """
        folder = os.path.join(self.root, BEST_DIR)
        path = os.path.join(folder, BEST_FILE)
        seen = None
        for _ in range(BEST_READ_ATTEMPTS):
            try:
                with os.fdopen(_open_regular(path), "rb") as f:
                    raw = f.read(MAX_RECORD_BYTES + 1)
                if len(raw) > MAX_RECORD_BYTES:
                    raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
                data = parse_record_text(raw)
                name = data.pop("checkpoint")
                record = _check_record(data, None, None)
            except FileNotFoundError:
                return None
            except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as e:
                self._warn(path, f"not a valid best record: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                return None
            checkpoint = os.path.join(folder, str(name))
            if not _BEST_CHECKPOINT.match(str(name)) or os.path.islink(checkpoint) or os.path.islink(folder):
                break
            if os.path.isfile(checkpoint):
                return record, checkpoint
            if raw == seen:
                break  # the pointer did not move: its checkpoint is really gone
            seen = raw
        self._warn(path, "names a checkpoint that is missing or outside the workspace")
        return None

    def _read_jsonl(self, path: str) -> list[dict[str, Any]]:
        """The JSON objects of an append-only JSON-lines file, oldest first; unreadable lines are skipped.

        The files only grow, so a second call parses only what was appended since the first (reading
        a long history or lineage at every tick stays cheap); a file replaced or cut short is read
        again from the start. A last line without its newline is parsed but not kept: it may still
        be being written. A FIFO planted under the name is not opened for reading.
        """
        cache = self._jsonl.pop(path, None)  # put back below once read
        try:
            with os.fdopen(_open_regular(path), "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size > MAX_JSONL_BYTES:
                    self._warn(path, f"larger than {MAX_JSONL_BYTES} bytes")
                    return []
                if cache is None or cache.inode != st.st_ino or st.st_size < cache.offset:
                    cache = _JsonLines(st.st_ino, generation=next(self._generations))
                f.seek(cache.offset)
                chunk = f.read(max(st.st_size - cache.offset, 0))
        except FileNotFoundError:
            return []
        except OSError as e:  # a link, FIFO or device planted under the name, or unreadable
            self._warn(path, "not a regular file" if e.errno in (errno.ELOOP, errno.EINVAL) else f"cannot be read: {e.strerror or e}")
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for raw in complete.splitlines():
            cache.lines += 1
            entry = self._parse_line(f"{path}:{cache.lines}", raw)
            if entry is not None:
                cache.entries.append(entry)
        cache.offset += len(complete)
        self._jsonl[path] = cache
        tail = chunk[len(complete):]
        last = self._parse_line(f"{path}:{cache.lines + 1}", tail, warn=False) if tail.strip() else None
        return [*cache.entries, *([last] if last is not None else [])]

    def _parse_line(self, where: str, raw: bytes, warn: bool = True) -> Optional[dict[str, Any]]:
        try:
            entry = json.loads(raw.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            if warn:
                self._warn(where, "not a JSON line")
            return None
        return entry if isinstance(entry, dict) else None


@dataclass
class _JsonLines:
    """What :meth:`Workspace._read_jsonl` has read of one file: where it stopped, and the objects so far."""

    inode: int = -1
    offset: int = 0
    lines: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0
    """Unique per read from the start: what was derived from an older copy of the file is not reused."""


class DiskFullError(UsageError):
    """The workspace's disk, quota or file size limit is exhausted: the member stops with one line."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""Errors that another publish would only repeat: training on would produce nothing anyone can load."""


def end_on_full_disk() -> None:
    """Make a full disk that kills any other background thread end the process with one line and exit code 2.

    TensorBoard's event writer is such a thread: once it died, the main thread blocks for ever on
    the bounded queue it fed, and the writer's exit handler would block on it again, so the process
    cannot unwind; it prints the error and leaves at once. What the workspace holds stays readable
    (every write is atomic); a temporary file cut short is removed at the member's next start.
    """
    if threading.excepthook is not _full_disk_hook:
        global _previous_hook
        _previous_hook, threading.excepthook = threading.excepthook, _full_disk_hook


def _full_disk_hook(args: Any) -> None:
    error = args.exc_value
    if not (isinstance(error, OSError) and error.errno in _FULL):
        return _previous_hook(args)
    print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: agent.pbt.directory: {os.strerror(error.errno)} "
          f"while the background thread {args.thread.name if args.thread else '?'} wrote (TensorBoard's event writer, say); "
          "the published records stay readable: free space, then resume with --checkpoint", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)


_previous_hook = threading.excepthook


class BackgroundPublisher:
    """Publishes one member's states from a worker thread, so that a PBT tick never waits for the disk.

    One state is in flight at a time, in order: weights, then the record that announces them, the
    history line, the cleanup of old iterations and, when asked, the copy to ``best/``. A failed
    publish must not stop training (a full disk, say), so its exception is logged as one warning,
    once per distinct error, when the next publish or :meth:`flush` collects it; a full disk instead
    raises :class:`DiskFullError` there (the files of the previous publish are intact, since every
    write is atomic). The worker lives
    as long as the process (starting a thread per publish costs the tick milliseconds); it is a
    daemon thread, and an ``atexit`` hook waits for its last publish. ``os.execv`` runs no exit
    hooks: flush before it.
    """

    def __init__(self, workspace: Workspace, keep: int):
        self.workspace = workspace  # its own instance: the scan caches are not shared across threads
        self.keep = keep
        self._jobs: queue.Queue = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._error: Optional[tuple[int, BaseException]] = None  # (iteration, what went wrong)
        self._logged: set[tuple[str, str]] = set()
        self._published: list[int] = []  # iterations this process published and has not deleted, oldest first

    def submit(self, record: Record, save_weights: Callable[[BinaryIO], None], best: bool) -> None:
        """Publish ``record`` and its weights in the background, after the previous publish is done."""
        self.flush()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name=f"pbt-publish-{record.policy_idx}", daemon=True)
            self._worker.start()
            atexit.register(self._flush_at_exit)
        self._jobs.put((record, save_weights, best))

    def _work(self) -> None:
        while True:
            record, save_weights, best = self._jobs.get()
            try:
                self._publish(record, save_weights, best)
            except BaseException as e:  # collected by flush(), training goes on: a worker that died would hang the next flush
                self._error = (record.iteration, e)
            finally:
                self._jobs.task_done()

    def _publish(self, record: Record, save_weights: Callable[[BinaryIO], None], best: bool) -> None:
        ws = self.workspace
        ws.publish(record, save_weights)
        ws.append_history(record)
        self._cleanup(record)
        if best:
            ws.publish_best(record)

    def _cleanup(self, record: Record) -> None:
        """Delete the iterations older than the ``keep`` newest, reading the folder only while it may hold others'.

        Until this process has published ``keep`` iterations itself, the folder may hold older
        ones of an earlier process (before a restart or resume): :meth:`Workspace.cleanup` reads
        them. From then on, everything older is gone and the oldest of this process's own is the
        one to delete: no listing, no record read, at every publish.
        """
        if record.iteration not in self._published:
            self._published.append(record.iteration)
        if len(self._published) <= self.keep:
            self.workspace.cleanup(record.policy_idx, self.keep, record.run)
            return
        self.workspace.delete_iterations(record.policy_idx, [self._published.pop(0)])

    def flush(self) -> Optional[BaseException]:
        """Wait for the publish in flight; its exception (logged here), if it failed."""
        self._jobs.join()
        failed, self._error = self._error, None
        if failed is None:
            return None
        iteration, error = failed
        if isinstance(error, OSError) and error.errno in _FULL:
            raise DiskFullError(f"agent.pbt.directory: {os.strerror(error.errno)} while publishing iteration {iteration} "
                                f"to {self.workspace.root}; its earlier records stay readable: free space, then resume "
                                "with --checkpoint") from None
        # an OSError's message names a random temporary file: its errno tells errors apart
        key = (type(error).__name__, str(getattr(error, "errno", None) or error))
        if key not in self._logged:
            self._logged.add(key)
            log.warning("PBT workspace: publishing iteration %d failed in the background (%s: %s); training goes on",
                        iteration, type(error).__name__, error)
        return error

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except DiskFullError as e:
            log.error("%s", e)
