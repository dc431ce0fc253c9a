import logging
import math
import os

import pytest
import yaml

from isaaclab_pbt.workspace import MAX_RECORD_BYTES, Record, Workspace, atomic_write


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
    }
    for it, text in cases.items():
        _write(ws, 0, it, text)
    os.makedirs(ws.record_path(0, 9))  # a directory where a file should be
    with caplog.at_level(logging.WARNING):
        assert ws.latest(0) == good
        ws.latest(0)
    assert not marker.exists()
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 8  # each bad file once, even when read twice


def test_nan_objective_counts_as_uninitialized(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    _publish(ws, 0, 1)
    text = open(ws.record_path(0, 1)).read().replace("objective: 0.5", "objective: .nan")
    _write(ws, 0, 1, text)
    assert ws.latest(0).objective is None


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
    with pytest.raises(RuntimeError, match="refusing to write"):
        _publish(ws, 2, 5)
    assert ws_other.iterations(0) == [1]


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
