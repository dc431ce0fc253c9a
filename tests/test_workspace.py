import errno
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict

import pytest
import yaml

from isaaclab_pbt.core.workspace import MAX_RECORD_BYTES, BackgroundPublisher, Record, Workspace, atomic_write


def _publish(ws, idx, it, objective=0.5, payload=b"weights"):
    rec = Record(idx, it, it * 100, objective, {"agent.params.config.gamma": 0.99})
    ws.publish(rec, lambda f: f.write(payload))
    return rec


def test_publish_and_read_back_without_leftovers(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    rec = _publish(ws, 3, 7)
    assert ws.latest(3) == rec
    assert ws.population() == {3: rec}
    assert sorted(os.listdir(ws.member_dir(3))) == ["000007.pth", "000007.yaml"]
    assert open(ws.weights_path(3, 7), "rb").read() == b"weights"


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "x.pth"
    atomic_write(str(path), lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(str(path), broken)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.pth"]


def _write(ws, idx, it, text):
    os.makedirs(ws.member_dir(idx), exist_ok=True)
    with open(ws.record_path(idx, it), "w") as f:
        f.write(text)


def test_hostile_records_are_skipped_and_older_valid_one_is_used(tmp_path, caplog):
    ws = Workspace(str(tmp_path / "ws"))
    good = _publish(ws, 0, 1)
    marker = tmp_path / "pwned"
    valid = yaml.safe_load(open(ws.record_path(0, 1)))
    cases = {
        2: "objective: 0.9\npolicy_idx: 0\niter",  # truncated
        3: f"!!python/object/apply:os.system ['touch {marker}']\n",  # code execution attempt
        4: yaml.safe_dump({**valid, "iteration": 4, "weights": "/etc/passwd"}),  # a path pointing outside
        5: yaml.safe_dump({**valid, "iteration": 5, "policy_idx": 1}),  # claims to be someone else
        6: yaml.safe_dump({**valid, "iteration": 6, "hyperparameters": {"lr": "rm -rf"}}),
        7: "x" * (MAX_RECORD_BYTES + 10),
        8: "- just\n- a list\n",
        10: json.dumps({**valid, "iteration": 10, "policy_idx": 1}),  # JSON, read first, is checked alike
        11: "[" * 100_000,  # nesting deeper than any parser recursion
    }
    for it, text in cases.items():
        _write(ws, 0, it, text)
    os.makedirs(ws.record_path(0, 9))  # a directory where a file should be
    with caplog.at_level(logging.WARNING):
        assert ws.latest(0) == good
        ws.latest(0)
    assert not marker.exists()
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 10  # each bad file once, even when read twice


def test_records_are_json_that_yaml_readers_type_alike(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    hp = {"agent.params.config.learning_rate": 1e-5, "big": 1e20, "agent.params.config.mini_epochs": 4, "neg": -2e-7}
    rec = Record(0, 1, 100, 0.5, hp, host="h\u00f6st")
    ws.publish(rec, lambda f: f.write(b"w"))
    text = open(ws.record_path(0, 1), "rb").read()
    assert json.loads(text) == yaml.safe_load(text) == asdict(rec)  # PyYAML reads "1e-05" as a string
    assert ws.latest(0) == rec


def test_older_yaml_records_are_still_read(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    rec = Record(2, 3, 300, 0.25, {"agent.params.config.gamma": 0.99})
    _write(ws, 2, 3, yaml.safe_dump(asdict(rec), sort_keys=True))
    assert ws.population() == {2: rec}
    older = {k: v for k, v in asdict(rec).items() if k not in ("run", "library")}  # before runs and libraries were named
    _write(ws, 2, 4, yaml.safe_dump({**older, "iteration": 4}, sort_keys=True))
    assert ws.latest(2) == Record(**{**older, "iteration": 4}) and ws.latest(2).library == ""


def test_nan_objective_counts_as_uninitialized(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    rec = _publish(ws, 0, 1)
    _write(ws, 0, 1, yaml.safe_dump(asdict(rec)).replace("objective: 0.5", "objective: .nan"))
    assert ws.latest(0).objective is None
    _write(ws, 0, 2, json.dumps({**asdict(rec), "iteration": 2, "objective": math.nan}))  # NaN: JSON's extension
    assert ws.latest(0).iteration == 2 and ws.latest(0).objective is None


def _settle(*paths, age_s=60.0):
    """Set mtimes far enough in the past that the scan caches trust them."""
    for path in paths:
        ns = time.time_ns() - int(age_s * 1e9)
        os.utime(path, ns=(ns, ns))


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(os, name)
    monkeypatch.setattr(os, name, lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    return calls


def test_scan_reads_again_only_what_changed(tmp_path, monkeypatch):
    ws = Workspace(str(tmp_path / "ws"))
    for idx in range(3):
        _publish(ws, idx, 1)
        _settle(ws.record_path(idx, 1), ws.member_dir(idx))
    assert sorted(ws.population()) == [0, 1, 2]
    listed, opened = _count_calls(monkeypatch, "listdir"), _count_calls(monkeypatch, "open")
    assert sorted(ws.population()) == [0, 1, 2]
    assert listed == [ws.root] and opened == []  # nothing changed: no member folder listed, no record read

    path = ws.record_path(1, 1)
    with open(path, "r+") as f:  # rewritten in place: same inode and size, another mtime
        text = f.read().replace('"objective": 0.5', '"objective": 0.7')
        f.seek(0)
        f.write(text)
    _settle(path, age_s=30)
    _publish(ws, 2, 2, objective=0.9)  # a new iteration renamed into a listed folder
    opened.clear()
    population = ws.population()
    assert population[1].objective == 0.7 and population[2].iteration == 2
    assert opened == [path, ws.record_path(2, 2)]


def test_scan_lists_again_a_folder_listed_within_one_clock_tick_of_its_change(tmp_path):
    """A coarse filesystem clock may leave a folder's mtime unchanged by a change right after a listing."""
    ws = Workspace(str(tmp_path / "ws"))
    _publish(ws, 0, 1)
    mtime = os.stat(ws.member_dir(0)).st_mtime_ns
    assert ws.latest(0).iteration == 1
    _publish(ws, 0, 2)
    os.utime(ws.member_dir(0), ns=(mtime, mtime))  # the change within the same tick
    assert ws.latest(0).iteration == 2


def test_member_folders_widen_above_1000_members(tmp_path):
    root = str(tmp_path / "ws")
    assert Workspace(root, 1000).member_dir(999) == os.path.join(root, "999")  # Isaac Lab's layout
    assert Workspace(root, 1000).member_dir(5) == os.path.join(root, "005")
    ws = Workspace(root, 1001)
    assert ws.member_dir(5) == os.path.join(root, "0005")
    for idx in (5, 1000):
        _publish(ws, idx, 1)
    ws.publish_best(ws.latest(1000))
    reader = Workspace(root)  # status, lineage, plot, export: no num_policies
    assert reader.members() == [5, 1000] and sorted(reader.population()) == [5, 1000]
    assert reader.iterations(5) == [1] and reader.latest(5).policy_idx == 5
    record, checkpoint = reader.best()
    assert record.policy_idx == 1000 and os.path.basename(checkpoint) == "1000_000001.pth"
    ws.publish_best(ws.latest(5))
    assert os.path.basename(Workspace(root).best()[1]) == "0005_000001.pth"
    with pytest.raises(ValueError):
        ws.member_dir(-1)


def test_background_publish_returns_at_once_and_writes_weights_before_the_record(tmp_path):
    ws = Workspace(str(tmp_path / "ws"), 2)
    publisher = BackgroundPublisher(Workspace(ws.root, 2), keep=2)
    release, seen = threading.Event(), []

    def slow_save(f):
        assert release.wait(10)
        seen.append(os.path.exists(ws.record_path(1, 1)))
        f.write(b"weights")

    rec = Record(1, 1, 100, 0.5, {})
    publisher.submit(rec, slow_save, best=True)
    assert not os.path.exists(ws.record_path(1, 1)) and ws.latest(1) is None
    release.set()
    assert publisher.flush() is None
    assert seen == [False] and ws.latest(1) == rec and ws.history(1) == [rec]
    assert os.stat(ws.record_path(1, 1)).st_mtime_ns >= os.stat(ws.weights_path(1, 1)).st_mtime_ns
    assert ws.best()[0] == rec


def test_a_process_that_exits_after_a_background_publish_finishes_it_first(tmp_path):
    code = f"""
import time
from isaaclab_pbt.core.workspace import BackgroundPublisher, Record, Workspace
publisher = BackgroundPublisher(Workspace({str(tmp_path / "ws")!r}, 1), keep=2)
publisher.submit(Record(0, 1, 100, 0.5, {{}}), lambda f: time.sleep(0.5) or f.write(b"w"), best=False)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert Workspace(str(tmp_path / "ws")).latest(0) is not None


def test_background_publish_failures_are_logged_once_and_later_publishes_work(tmp_path, caplog):
    ws = Workspace(str(tmp_path / "ws"), 1)
    publisher = BackgroundPublisher(Workspace(ws.root, 1), keep=2)

    def full(f):
        raise OSError(errno.EIO, "Input/output error", f.name)  # names a random temporary file

    with caplog.at_level(logging.WARNING):
        for it in (1, 2):
            publisher.submit(Record(0, it, it, 0.5, {}), full, best=False)
            assert isinstance(publisher.flush(), OSError)
        publisher.submit(Record(0, 3, 3, 0.5, {}), lambda f: f.write(b"w"), best=False)
        assert publisher.flush() is None
    warnings = [r.getMessage() for r in caplog.records if "failed in the background" in r.getMessage()]
    assert len(warnings) == 1 and "iteration 1" in warnings[0] and "Input/output error" in warnings[0]
    assert ws.iterations(0) == [3] and not [n for n in os.listdir(ws.member_dir(0)) if n.endswith(".tmp")]


def test_a_publish_that_raises_even_a_base_exception_leaves_the_writer_alive(tmp_path):
    """SystemExit from a save (a library calling sys.exit) once ended the worker thread, and the next flush waited forever."""
    ws = Workspace(str(tmp_path / "ws"), 1)
    publisher = BackgroundPublisher(Workspace(ws.root, 1), keep=2)
    results = []

    def exits(f):
        raise SystemExit(3)

    def two_publishes():
        publisher.submit(Record(0, 1, 1, 0.5, {}), exits, best=False)
        results.append(publisher.flush())
        publisher.submit(Record(0, 2, 2, 0.5, {}), lambda f: f.write(b"w"), best=False)
        results.append(publisher.flush())

    runner = threading.Thread(target=two_publishes, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "the second publish never finished: the writer thread died"
    assert isinstance(results[0], SystemExit) and results[1] is None
    assert ws.iterations(0) == [2] and ws.latest(0).iteration == 2


def test_paths_resolving_outside_are_refused(tmp_path):
    outside = tmp_path / "outside"
    os.makedirs(outside)
    ws_other = Workspace(str(outside))
    _publish(ws_other, 0, 1)
    ws = Workspace(str(tmp_path / "ws"))
    os.makedirs(ws.root)
    os.symlink(os.path.join(outside, "000"), ws.member_dir(2))  # member folder is a link out
    _publish(ws, 1, 1)
    os.unlink(ws.weights_path(1, 1))
    os.symlink(ws_other.weights_path(0, 1), ws.weights_path(1, 1))  # weights file is a link out
    assert ws.latest(2) is None
    assert ws.checked_weights_path(1, 1) is None
    assert ws.lineage(2) == []
    _publish(ws, 2, 5)  # the link is replaced by a folder of the workspace: nothing written outside
    assert not os.path.islink(ws.member_dir(2)) and ws.iterations(2) == [5]
    assert ws_other.iterations(0) == [1] and sorted(os.listdir(outside / "000")) == ["000001.pth", "000001.yaml"]


def test_cleanup_keeps_the_newest(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    for it in range(1, 7):
        _publish(ws, 0, it)
    assert ws.cleanup(0, keep=3) == [1, 2, 3]
    assert ws.iterations(0) == [4, 5, 6]
    assert sorted(os.listdir(ws.member_dir(0))) == [f"{i:06d}.{e}" for i in (4, 5, 6) for e in ("pth", "yaml")]


def test_lineage_is_append_only_and_survives_a_cut_line(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    ws.append_lineage(0, {"event": "replaced", "donor": 2, "frame": 100})
    ws.append_lineage(0, {"event": "mutated", "donor": 0, "frame": 200})
    with open(ws.lineage_path(0), "a") as f:
        f.write('{"event": "repl')  # a crash in the middle of a line
    assert [e["frame"] for e in ws.lineage(0)] == [100, 200]
    ws.append_lineage(0, {"event": "replaced", "donor": 1, "frame": 300})
    assert [e["frame"] for e in ws.lineage(0)] == [100, 200, 300]  # the next entry starts on its own line
    with pytest.raises(ValueError):
        ws.append_lineage(0, {"objective": math.nan})


def test_best_checkpoint_is_a_link_that_outlives_cleanup_and_a_copy_where_links_fail(tmp_path, monkeypatch):
    """A link writes no second copy of a checkpoint (megabytes at GPU scale); a filesystem without links gets a copy."""
    ws = Workspace(str(tmp_path / "ws"))
    for it in (1, 2, 3):
        _publish(ws, 0, it, payload=f"state {it}".encode())
    ws.publish_best(ws.latest(0))
    record, path = ws.best()
    assert os.path.samefile(path, ws.weights_path(0, 3)) and record.iteration == 3
    ws.publish_best(ws.latest(0))  # the same checkpoint again: still one file, no temporary left behind
    assert sorted(os.listdir(os.path.dirname(path))) == ["000_000003.pth", "best.yaml"]
    for it in (4, 5, 6):
        _publish(ws, 0, it)
    ws.cleanup(0, keep=2)
    assert not os.path.exists(ws.weights_path(0, 3)) and open(ws.best()[1], "rb").read() == b"state 3"

    def no_links(*args, **kwargs):  # what os.link raises on a filesystem without hard links, e.g. some network mounts
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    ws.publish_best(ws.latest(0))
    path = ws.best()[1]
    assert not os.path.samefile(path, ws.weights_path(0, 6)) and open(path, "rb").read() == b"weights"


def test_best_pointer_never_names_a_deleted_checkpoint_when_members_race(tmp_path):
    import threading

    ws = Workspace(str(tmp_path / "ws"))
    rounds = 60
    records = {(idx, it): _publish(ws, idx, it, payload=f"{idx}-{it}".encode()) for idx in (0, 1) for it in range(1, rounds + 1)}
    ws.publish_best(records[0, 1])
    dangling, done = [], threading.Event()

    def member(idx):
        for it in range(1, rounds + 1):
            ws.publish_best(records[idx, it])

    def reader():
        while not done.is_set():
            if Workspace(ws.root).best() is None:  # a fresh reader: a pointer to a missing file reads as None
                dangling.append(1)

    threads = [threading.Thread(target=member, args=(i,)) for i in (0, 1)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert not dangling
    names = sorted(os.listdir(os.path.join(ws.root, "best")))
    assert names == [f"000_{rounds - 1:06d}.pth", f"000_{rounds:06d}.pth", f"001_{rounds - 1:06d}.pth", f"001_{rounds:06d}.pth", "best.yaml"]


def test_history_reads_only_what_was_appended_and_starts_over_when_the_file_is_replaced(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    rec = lambda it: Record(0, it, it * 100, 0.1 * it, {"lr": 1e-3}, time=1.0, pid=1, host="h")
    for it in (1, 2):
        ws.append_history(rec(it))
    assert [r.iteration for r in ws.history(0)] == [1, 2]
    path = ws.history_path(0)
    with open(path, "ab") as f:
        f.write(b'{"partial": ')  # a line still being written is not read yet ...
    assert [r.iteration for r in ws.history(0)] == [1, 2]
    with open(path, "ab") as f:
        f.write(b'1}\n')  # ... and once complete, it is read (and skipped: not a record)
    ws.append_history(rec(3))
    assert [r.iteration for r in ws.history(0)] == [1, 2, 3]
    tmp = tmp_path / "replacement"
    tmp.write_text(json.dumps(asdict(rec(7))) + "\n")
    os.replace(tmp, path)  # a new file under the same name: read from its start
    assert [r.iteration for r in ws.history(0)] == [7]


def test_a_fifo_named_like_a_history_does_not_hang_the_reader(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    os.makedirs(ws.member_dir(0))
    os.mkfifo(ws.history_path(0))
    assert ws.history(0) == []


def test_lineage_shares_the_incremental_reader_and_nothing_stale_survives_a_deleted_file(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    ws.append_lineage(0, {"event": "mutated", "frame": 1})
    ws.append_history(Record(0, 1, 100, 0.1, {"lr": 1e-3}, time=1.0, pid=1, host="h"))
    assert len(ws.lineage(0)) == 1 and len(ws.history(0)) == 1
    with open(ws.lineage_path(0), "ab") as f:
        f.write(b'{"event": "replaced", "frame": 2}')  # no newline yet: read, but read again next time
    assert [e["frame"] for e in ws.lineage(0)] == [1, 2]
    with open(ws.lineage_path(0), "ab") as f:
        f.write(b"\n" + b"[" * 100_000 + b"\n")  # deep nesting: skipped, no RecursionError
    assert [e["frame"] for e in ws.lineage(0)] == [1, 2]
    os.unlink(ws.history_path(0))
    assert ws.history(0) == []
    os.unlink(ws.lineage_path(0))
    os.mkfifo(ws.lineage_path(0))
    assert ws.lineage(0) == []  # a FIFO under the name: not read, no hang


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_and_folders_follow_the_users_umask(tmp_path, umask):
    """Not mkstemp's 0600: the other users of a shared folder read what the umask lets them."""
    code = f"""
import os, stat, sys
os.umask({umask})
from isaaclab_pbt.core.workspace import Record, Workspace
ws = Workspace(sys.argv[1], 2)
rec = Record(1, 3, 300, 0.5, {{"agent.params.config.gamma": 0.99}})
ws.lock(1)
ws.publish(rec, lambda f: f.write(b"weights"))
ws.append_history(rec)
ws.append_lineage(1, {{"event": "mutated"}})
ws.publish_best(rec)
for d, dirs, files in os.walk(sys.argv[1]):
    for n in dirs + files:
        p = os.path.join(d, n)
        print(os.path.relpath(p, sys.argv[1]), "d" if os.path.isdir(p) else "f", oct(stat.S_IMODE(os.lstat(p).st_mode)))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws")], capture_output=True, text=True, check=True).stdout
    modes = {name: (kind, int(mode, 8)) for name, kind, mode in (line.split() for line in out.splitlines())}
    assert {"001/000003.pth", "001/000003.yaml", "001/history.jsonl", "001/lineage.jsonl", "001/.lock",
            "best/best.yaml", "best/001_000003.pth", "001", "best"} <= set(modes)
    for name, (kind, mode) in modes.items():
        assert mode == (0o777 if kind == "d" else 0o666) & ~umask, (name, oct(mode))


def test_cleanup_deletes_only_this_runs_older_records_never_junk_or_another_runs(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    for it in (1, 2, 3):
        ws.publish(Record(0, it, it * 100, 0.5, {}, run="earlier"), lambda f: f.write(b"earlier"))
    for it in (4, 5, 6):
        ws.publish(Record(0, it, it * 100, 0.5, {}, run="this"), lambda f: f.write(b"this"))
    for it in (900, 901, 902):  # junk named like newer iterations
        with open(ws.record_path(0, it), "w") as f:
            f.write("junk")
    assert ws.cleanup(0, 2, run="this") == [4]
    assert ws.iterations(0) == [1, 2, 3, 5, 6, 900, 901, 902]
    assert all(os.path.exists(ws.weights_path(0, it)) for it in (1, 2, 3, 5, 6))


def test_background_cleanup_removes_an_earlier_process_s_iterations_then_stops_reading_the_folder(tmp_path, monkeypatch):
    """Until it has published ``keep`` itself, a member reads its folder (what its earlier process left); then it does not."""
    ws = Workspace(str(tmp_path / "ws"), 1)
    for it in (1, 2, 3):  # an earlier process of this run, and another run's record
        ws.publish(Record(0, it, it * 100, 0.5, {}, run="this"), lambda f: f.write(b"before"))
    ws.publish(Record(0, 4, 400, 0.5, {}, run="other"), lambda f: f.write(b"other"))
    publisher = BackgroundPublisher(Workspace(ws.root, 1), keep=2)
    reads = []
    cleanup = Workspace.cleanup
    monkeypatch.setattr(Workspace, "cleanup", lambda self, *a: reads.append(a) or cleanup(self, *a))
    for it in range(5, 11):
        publisher.submit(Record(0, it, it * 100, 0.5, {}, run="this"), lambda f: f.write(b"now"), best=True)
        assert publisher.flush() is None
        assert [i for i in ws.iterations(0) if i != 4] == ([3, 5] if it == 5 else [it - 1, it])
    assert len(reads) == 2  # the first two publishes; none after
    assert ws.iterations(0) == [4, 9, 10] and os.path.exists(ws.weights_path(0, 4))
    best = sorted(n for n in os.listdir(os.path.join(ws.root, "best")) if n.endswith(".pth"))
    assert best == ["000_000009.pth", "000_000010.pth"]


def test_best_copies_of_an_earlier_process_are_removed_and_only_two_stay(tmp_path):
    ws = Workspace(str(tmp_path / "ws"), 2)
    for it in (1, 2, 3):
        ws.publish_best(_publish(ws, 1, it))
    _publish(ws, 0, 1)
    ws.publish_best(ws.latest(0))  # another member's copy is never touched
    fresh = Workspace(ws.root, 2)  # a restarted member: it lists best/ once
    for it in (4, 5, 6):
        fresh.publish_best(_publish(fresh, 1, it))
    copies = sorted(n for n in os.listdir(os.path.join(ws.root, "best")) if n.endswith(".pth"))
    assert copies == ["000_000001.pth", "001_000005.pth", "001_000006.pth"]
    assert fresh.best()[0].iteration == 6


def test_history_lines_a_kill_lost_are_restored_from_the_records_once(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    recs = [_publish(ws, 0, it) for it in (1, 2, 3)]
    ws.append_history(recs[0])  # killed after publishing 2 and 3, before their history lines
    assert ws.backfill_history(0) == [2, 3]
    assert ws.backfill_history(0) == []
    assert [r.iteration for r in Workspace(ws.root).history(0)] == [1, 2, 3]
