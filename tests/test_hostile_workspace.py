"""A training member on a hostile workspace: whatever was planted, it keeps training, runs no code,
reads and writes nothing outside, and loses none of its own files.

Each case plants one attack between two runs of member 1 of a real 2-member workspace (member 0
is the donor, with a real published state). The second run resumes (``--checkpoint`` on its
command line), ticks once with real rl_games PPO epochs, and every reader (records, history,
lineage, best) is asked about every member afterwards.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.workspace import Record, Workspace, record_text
from isaaclab_pbt.rl_games import checkpoint
from isaaclab_pbt.rl_games.observer import PbtObserver

from .conftest import make_agent, plant_pickle, train_epochs

P = "agent.params.config."
FRAMES = 32 * 16
HP = {P + "learning_rate": 3e-3, P + "gamma": 0.99, P + "mini_epochs": 4}


@pytest.fixture(scope="module")
def donor_state(tmp_path_factory):
    """Member 0's real training state (an agent trained a little)."""
    agent, _ = make_agent(tmp_path_factory.mktemp("donor"), run="donor")
    train_epochs(agent, 2)
    return checkpoint.published_state(agent)


def _cfg(root: Path, **extra) -> PbtCfg:
    block = {"enabled": True, "num_policies": 2, "policy_idx": 1, "directory": str(root), "workspace": "ws",
             "interval_steps": FRAMES, "mutation_rate": 1.0, "min_initialized": 2, "keep_checkpoints": 100,
             "apply": "in-place", "objective": "episode.Curriculum/adr",
             "mutation": {P + "learning_rate": "mutate_float", P + "gamma": "mutate_discount", P + "mini_epochs": "mutate_int"}}
    return PbtCfg.from_dict({**block, **extra})


def _member(root: Path, cfg: PbtCfg, run: str, resume: bool):
    argv = ["scripts/train.py", *(["--checkpoint", "x.pth"] if resume else [])]
    agent, _ = make_agent(root / "logs", [P + "learning_rate=1e-8"], run=run,
                          observer=lambda c: PbtObserver(cfg, c, seed=5, argv=argv, exec_fn=_no_exec))
    return agent, agent.algo_observer


def _no_exec(path, args):
    raise AssertionError("in-place members never re-execute")


def _end_of_process():
    from isaaclab_pbt.core import workspace

    for fd in workspace._HELD_LOCKS.values():
        os.close(fd)
    workspace._HELD_LOCKS.clear()


@pytest.fixture(autouse=True)
def _locks_released():
    yield
    _end_of_process()


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: its kind, bytes (regular files) and mtime, links not followed."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else os.readlink(path) if os.path.islink(path) else None
            out[os.path.relpath(path, folder)] = (st.st_mode >> 12, data, st.st_mtime_ns)
    return out


# -- the attacks: (ws, outside, marker) -> None; outside holds decoy targets -----------------------
def _link_out(rel: str, target: str):
    def attack(ws, outside, marker):
        path = os.path.join(ws.root, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        os.symlink(outside / target, path)
    return attack


def _outside_record(ws, outside, marker):
    """Member 0's newest record is a link to a record outside that claims a huge objective."""
    (outside / "rec.yaml").write_bytes(record_text({**_record_dict(0, 9), "objective": 123.0}))
    os.symlink(outside / "rec.yaml", ws.record_path(0, 9))


def _record_dict(idx: int, it: int, **fields) -> dict:
    rec = Record(idx, it, it * FRAMES, 0.9, dict(HP))
    return {**rec.__dict__, **fields}


def _write(path: str, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


def _donor_record(**fields):
    def attack(ws, outside, marker):
        raw = json.dumps(_record_dict(0, 2, **fields)).encode()  # json writes NaN/Infinity as given
        _write(ws.record_path(0, 2), raw)
        shutil.copy(ws.weights_path(0, 1), ws.weights_path(0, 2))
    return attack


def _near_limit_pair(ws, outside, marker):
    """Two donors near the float limit: their sum overflows, their mean does not."""
    _donor_record(objective=1.7e308)(ws, outside, marker)
    os.makedirs(ws.member_dir(2), exist_ok=True)
    _write(ws.record_path(2, 2), record_text(_record_dict(2, 2, objective=1.6e308)))
    shutil.copy(ws.weights_path(0, 1), ws.weights_path(2, 2))


def _donor_state(change):
    def attack(ws, outside, marker):
        state = torch.load(ws.weights_path(0, 1), weights_only=True)
        change(state)
        with open(ws.weights_path(0, 1), "wb") as f:
            torch.save(state, f)
    return attack


def _first(state):
    return next(k for k, v in state["model"].items() if v.is_floating_point() and v.dim() == 2)


def _nan(state):
    state["model"][_first(state)][0, 0] = math.nan


def _inf_optimizer(state):
    next(iter(state["optimizer"]["state"].values()))["exp_avg"].fill_(math.inf)


def _wrong_shape(state):
    key = _first(state)
    state["model"][key] = torch.zeros(state["model"][key].shape[0] + 1, state["model"][key].shape[1])


def _missing_key(state):
    del state["model"][_first(state)]


def _pickle(ws, outside, marker):
    plant_pickle(Path(ws.weights_path(0, 1)), marker)


def _fifo(rel: str):
    def attack(ws, outside, marker):
        path = os.path.join(ws.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        os.mkfifo(path)
    return attack


def _huge(rel: str):
    def attack(ws, outside, marker):
        with open(os.path.join(ws.root, rel), "ab") as f:
            f.truncate(300 << 20)  # sparse: costs no disk
    return attack


def _nested(rel: str, line: bool):
    def attack(ws, outside, marker):
        deep = b"[" * 200_000 + b"]" * 200_000
        with open(os.path.join(ws.root, rel), "ab" if line else "wb") as f:
            f.write(deep + (b"\n" if line else b""))
    return attack


def _absurd_names(ws, outside, marker):
    for idx in (0, 1):
        _write(os.path.join(ws.member_dir(idx), "9" * 200 + ".yaml"), b"{}")
        _write(os.path.join(ws.member_dir(idx), "9" * 200 + ".pth"), b"junk")


def _junk_high_iterations(ws, outside, marker):
    for it in (900, 901, 902):
        _write(ws.record_path(1, it), b"not a record")
        _write(ws.weights_path(1, it), b"junk")


def _lineage_lines(ws, outside, marker):
    with open(ws.lineage_path(1), "ab") as f:
        f.write(b'{"event": "replaced"}\n[1, 2]\n\xff\xfe garbage\n{"event": "replaced", "donor": null, "frame": "x"}\n{"cut')


def _best_named_outside(ws, outside, marker):
    os.makedirs(os.path.join(ws.root, "best"), exist_ok=True)
    shutil.copy(ws.weights_path(0, 1), outside / "000_000001.pth")
    text = record_text({**_record_dict(0, 1), "checkpoint": "../../outside/000_000001.pth"})
    _write(os.path.join(ws.root, "best", "best.yaml"), text)


def _leftover_temps(ws, outside, marker):
    best = os.path.join(ws.root, "best")
    os.makedirs(best, exist_ok=True)
    for path in (os.path.join(ws.member_dir(1), ".000002.pth.abc.tmp"), os.path.join(best, ".001_000001.pth.old.tmp")):
        _write(path, b"cut by a kill")
    old = time.time() - 3600
    os.utime(os.path.join(best, ".001_000001.pth.old.tmp"), (old, old))
    _write(os.path.join(best, ".000_000002.pth.live.tmp"), b"another member is writing this")


def _unreadable(ws, outside, marker):
    os.chmod(ws.record_path(0, 1), 0)
    os.chmod(ws.lineage_path(1), 0)


# name -> (attack, extra PbtCfg settings)
CASES = {
    "best folder links out": (_link_out("best", "bestdir"), {}),
    "history links out": (_link_out("001/history.jsonl", "history.jsonl"), {}),
    "lineage links out": (_link_out("001/lineage.jsonl", "lineage.jsonl"), {}),
    "lock file links out": (_link_out("001/.lock", "sentinel"), {}),
    "donor weights link out": (_link_out("000/000001.pth", "weights.pth"), {}),
    "donor record links out": (_outside_record, {}),
    "best pointer names a file outside": (_best_named_outside, {}),
    "donor weights are a pickle that runs code": (_pickle, {}),
    "donor weights hold NaN": (_donor_state(_nan), {}),
    "donor optimiser holds inf": (_donor_state(_inf_optimizer), {}),
    "donor tensor has the wrong shape": (_donor_state(_wrong_shape), {}),
    "donor state lacks a tensor": (_donor_state(_missing_key), {}),
    "donor objective NaN": (_donor_record(objective=math.nan), {}),
    "donor objective inf": (_donor_record(objective=math.inf), {}),
    "donor objective a string": (_donor_record(objective="high"), {}),
    "objectives near the float limit": (_donor_record(objective=1.7e308), {}),
    "two objectives near the float limit": (_near_limit_pair, {"num_policies": 3}),
    "donor hyperparameters hostile": (_donor_record(hyperparameters={
        P + "mini_epochs": 100000, P + "learning_rate": 1e30, P + "gamma": 5.0, "--checkpoint": 1.0}),
        {"bounds": {P + "mini_epochs": [1, 8], P + "learning_rate": [1e-6, 1e-2]}}),
    "record is a FIFO": (_fifo("000/000003.yaml"), {}),
    "history is a FIFO": (_fifo("001/history.jsonl"), {}),
    "lineage is a FIFO": (_fifo("001/lineage.jsonl"), {}),
    "donor weights are a FIFO": (_fifo("000/000001.pth"), {}),
    "best pointer is a FIFO": (_fifo("best/best.yaml"), {}),
    "huge record": (_huge("000/000004.yaml"), {}),
    "huge history": (_huge("000/history.jsonl"), {"compare": "equal_frames"}),
    "deeply nested record": (_nested("000/000004.yaml", line=False), {}),
    "deeply nested lineage line": (_nested("001/lineage.jsonl", line=True), {}),
    "deeply nested history line": (_nested("000/history.jsonl", line=True), {"compare": "equal_frames"}),
    "absurd iterations in file names": (_absurd_names, {}),
    "junk files with high iterations": (_junk_high_iterations, {"keep_checkpoints": 2}),
    "lineage entries without a donor and junk lines": (_lineage_lines, {}),
    "temporary files left by kills": (_leftover_temps, {}),
    "unreadable files": (_unreadable, {}),
}


@pytest.mark.adversarial("hostile workspace cases survived")
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_member_survives_a_hostile_workspace(tmp_path, donor_state, case):
    attack, extra = CASES[case]
    if case == "unreadable files" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    cfg = _cfg(tmp_path, **extra)
    ws = Workspace(str(tmp_path / "ws"), 2)
    ws.publish(Record(0, 1, FRAMES, 0.9, dict(HP)), lambda f: checkpoint.save(donor_state, f))
    ws.append_history(ws.read_record(0, 1))
    # member 1's first run: two intervals of its own, its files on disk
    agent, obs = _member(tmp_path, cfg, "member", resume=False)
    for _ in range(2):
        train_epochs(agent, 1)
        obs.tick()
    obs.flush()
    shutil.copy(ws.weights_path(1, 2), tmp_path / "resume.pth")
    own_before = {it: ws.read_record(1, it) for it in ws.iterations(1)}
    assert sorted(own_before) == [1, 2] and all(own_before.values())
    outside, marker = tmp_path / "outside", tmp_path / "pwned"
    (outside / "bestdir").mkdir(parents=True)
    for name in ("sentinel", "history.jsonl", "lineage.jsonl"):
        (outside / name).write_bytes(b"outside, not to be touched\n")
    shutil.copy(ws.weights_path(0, 1), outside / "weights.pth")
    attack(ws, outside, marker)
    before = snapshot(outside)
    _end_of_process()  # the first run is over: its lock goes, as when its process ends

    # the second run resumes over the planted files and trains one more interval
    agent, obs = _member(tmp_path, cfg, "member", resume=True)
    agent.set_full_state_weights(checkpoint.load(str(tmp_path / "resume.pth")))  # as rl_games restores --checkpoint
    params = {k: v.clone() for k, v in agent.model.state_dict().items()}
    train_epochs(agent, 1)
    obs.tick()
    obs.flush()
    Workspace(ws.root, 2).publish_best(ws.latest(1))  # what the member does when it leads
    if case.startswith("donor") and case not in ("donor objective inf", "donor objective NaN", "donor objective a string",
                                                 "donor hyperparameters hostile", "donor record links out"):
        # a donor that cannot be trusted is not copied, not even in part
        entries = [e for e in ws.lineage(1) if e.get("event") == "rejected"]
        assert entries and entries[-1]["reason"], ws.lineage(1)
        live = agent.model.state_dict()
        donor_model = donor_state["model"]
        assert not all(torch.equal(live[k], donor_model[k]) for k in donor_model if k in live)
        assert all(torch.isfinite(v).all() for v in live.values() if v.is_floating_point())
    if case in ("donor hyperparameters hostile", "objectives near the float limit", "two objectives near the float limit",
                "lineage links out"):
        replaced = [e for e in ws.lineage(1) if e.get("event") == "replaced"]
        assert replaced and replaced[-1]["iteration"] == 3, ws.lineage(1)  # ranked and replaced as usual
    if case == "donor hyperparameters hostile":
        assert agent.mini_epochs_num <= 8 and agent.last_lr <= 1e-2 and agent.gamma <= 0.9999  # clipped to the bounds
        assert all(not k.startswith("-") for k in ws.latest(1).hyperparameters)
    if case == "temporary files left by kills":
        left = sorted(n for d in (ws.member_dir(1), os.path.join(ws.root, "best")) for n in os.listdir(d) if n.endswith(".tmp"))
        assert left == [".000_000002.pth.live.tmp"]  # another member's live write is not touched
    if case == "junk files with high iterations":
        assert {900, 901, 902} <= set(ws.iterations(1))  # not this run's: neither counted nor deleted
    del params

    # every reader, on every member, returns without hanging or raising
    reader = Workspace(ws.root)
    for idx in (0, 1):
        reader.population(), reader.history(idx), reader.lineage(idx), reader.iterations(idx)
    best = reader.best()
    assert best is None or reader.inside(best[1])
    assert not any(r.objective == 123.0 for r in reader.population().values())  # nothing read from outside
    assert not marker.exists(), "planted code ran"
    assert snapshot(outside) == before, "something outside the workspace changed"
    # none of member 1's own files were lost: its records are all there, and its new one too
    after = {it: reader.read_record(1, it) for it in reader.iterations(1)}
    kept = {it: rec for it, rec in own_before.items() if it >= 3 - cfg.keep_checkpoints + 1}
    assert {it: after.get(it) for it in kept} == kept
    assert reader.latest(1).iteration == 3
    assert [r.iteration for r in reader.history(1)] == [1, 2, 3]
    for path in (reader.history_path(1), reader.lineage_path(1), os.path.join(ws.root, "best")):
        assert not os.path.islink(path)
