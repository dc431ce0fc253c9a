"""status, lineage, plot and export on hostile workspaces: each returns (no hang, no traceback), runs no
planted code, writes nothing outside the workspace (plots/) and the export folder, and deletes nothing.

The workspaces are written the way members write them (``Workspace.publish``, history and lineage
lines, ``publish_best``) with real training-state checkpoints, then attacked one way per case.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from isaaclab_pbt.core.workspace import Record, Workspace
from isaaclab_pbt.results.lineage import family, render_text
from isaaclab_pbt.rl_games import checkpoint as ckpt

from .conftest import child_env, plant_pickle

LR = "agent.params.config.learning_rate"
TOOLS = [["status"], ["status", "--json"], ["lineage"], ["lineage", "--json"], ["plot"], ["export", "{out}"]]
# runs the commands in one interpreter (one torch import), saying on stderr which one starts
DRIVER = """
import json, sys
from isaaclab_pbt.cli import main
codes = []
for command in json.loads(sys.argv[1]):
    print("running " + " ".join(command[:1] + command[2:]), file=sys.stderr, flush=True)
    codes.append(main(command))
print("CODES " + json.dumps(codes))
"""


def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"model": {"a2c_network.mu.weight": torch.randn(2, 4, generator=g), "a2c_network.mu.bias": torch.zeros(2)},
            "optimizer": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0, 1]}]}, "epoch": 4, "frame": 4096,
            "env_state": {"level": torch.zeros(8)}}


def make_workspace(root: Path) -> Workspace:
    """Two members, four intervals each, member 1 took member 0's weights once; member 0 is the best."""
    ws = Workspace(str(root), num_policies=2)
    t = time.time() - 100
    for it in range(1, 5):
        for idx in (0, 1):
            rec = Record(idx, it, it * 4096, 0.5 + 0.1 * it - 0.2 * idx, {LR: 3e-4}, time=t + it * 10 + idx)
            ws.publish(rec, lambda f, idx=idx: ckpt.save(_state(idx), f))
            ws.append_history(rec)
        if it == 2:
            ws.append_lineage(1, {"event": "replaced", "time": t + 25, "frame": 8192, "iteration": 2, "objective": 0.2,
                                  "donor": 0, "donor_iteration": 2, "donor_frame": 8192, "changed": {LR: [3e-4, 6e-4]},
                                  "hyperparameters": {LR: 6e-4}, "applied": "in-place"})
    ws.publish_best(ws.latest(0))
    return ws


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below ``folder``, links not followed: type and, for regular files, the content's hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(path, folder)] = (stat.S_IFMT(st.st_mode), digest)
    return out


def _outside_copy(ws: Workspace, outside: Path, name: str) -> Path:
    """A valid-looking copy of part of the workspace outside it (what a link out points to)."""
    target = outside / name
    shutil.copytree(ws.member_dir(0), target) if name.startswith("member") else shutil.copytree(Path(ws.root) / "best", target)
    return target


def _link_lineage_out(ws, outside, marker):
    (outside / "lineage.jsonl").write_text(json.dumps({"event": "mutated", "time": 1.0, "frame": 1}) + "\n")
    os.unlink(ws.lineage_path(1))
    os.symlink(outside / "lineage.jsonl", ws.lineage_path(1))


def _fifo(path):
    def attack(ws, outside, marker):
        target = path(ws)
        if os.path.exists(target):
            os.unlink(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.mkfifo(target)
    return attack


def _append(path, text):
    def attack(ws, outside, marker):
        with open(path(ws), "a") as f:
            f.write(text + "\n")
    return attack


def _nested(depth):
    inner = "1"
    for _ in range(depth):
        inner = '{"k": ' + inner + "}"
    return inner


def _planted_best(ws, outside, marker):
    plant_pickle(Path(ws.best()[1]), marker)


def _planted_member_weights(ws, outside, marker):
    for it in ws.iterations(1):
        plant_pickle(Path(ws.weights_path(1, it)), marker)


def _nan_best(ws, outside, marker):
    state = _state(0)
    state["model"]["a2c_network.mu.weight"][0, 0] = float("nan")
    with open(ws.best()[1], "wb") as f:
        ckpt.save(state, f)


def _best_names_outside(ws, outside, marker):
    best = Path(ws.root) / "best" / "best.yaml"
    data = json.loads(best.read_text())
    shutil.copy(ws.best()[1], outside / "000_000004.pth")
    data["checkpoint"] = "../../" + outside.name + "/000_000004.pth"
    best.write_text(json.dumps(data))


def _huge_record(ws, outside, marker):
    with open(ws.record_path(0, 99), "w") as f:
        f.write('{"x": "' + "a" * (3 << 20) + '"}')


def _absurd_iteration(ws, outside, marker):
    for name in ("999999999999999999999.yaml", "999999999999999999999.pth"):
        (Path(ws.member_dir(0)) / name).write_text("{}")


def _self_and_same_time_cycle(ws, outside, marker):
    for idx in (0, 1):
        ws.append_lineage(idx, {"event": "replaced", "time": 5e9, "frame": 99, "donor": 1 - idx, "donor_iteration": 1})
        ws.append_lineage(idx, {"event": "replaced", "time": 5e9 + 1, "frame": 100, "donor": idx, "donor_iteration": 1})


CASES = {
    # special files where records and logs belong
    "fifo-newest-record": (_fifo(lambda ws: ws.record_path(0, 99)), 0),
    "fifo-lineage": (_fifo(lambda ws: ws.lineage_path(1)), 0),
    "fifo-history": (_fifo(lambda ws: ws.history_path(0)), 0),
    "fifo-best-pointer": (_fifo(lambda ws: os.path.join(ws.root, "best", "best.yaml")), 1),
    "directory-named-like-a-record": (lambda ws, o, m: os.makedirs(ws.record_path(1, 99)), 0),
    "huge-record": (_huge_record, 0),
    "absurd-iterations": (_absurd_iteration, 0),
    # links out of the workspace
    "plots-folder-links-out": (lambda ws, o, m: os.symlink(o, os.path.join(ws.root, "plots")), 0),
    "plot-file-links-out": (lambda ws, o, m: (os.mkdir(os.path.join(ws.root, "plots")),
                                              os.symlink(o / "victim.png", os.path.join(ws.root, "plots", "population.png"))), 0),
    "member-folder-links-out": (lambda ws, o, m: os.symlink(_outside_copy(ws, o, "member"), os.path.join(ws.root, "002")), 0),
    "lineage-links-out": (_link_lineage_out, 0),
    "best-folder-links-out": (lambda ws, o, m: (_outside_copy(ws, o, "best"), shutil.rmtree(os.path.join(ws.root, "best")),
                                                os.symlink(o / "best", os.path.join(ws.root, "best"))), 1),
    "best-pointer-names-a-file-outside": (_best_names_outside, 1),
    # nesting and malformed lineage entries
    "deep-json-lineage-line": (_append(lambda ws: ws.lineage_path(1), "[" * 100_000), 0),
    "deep-json-history-line": (_append(lambda ws: ws.history_path(0), '{"a":' * 100_000), 0),
    "deep-yaml-record": (lambda ws, o, m: Path(ws.record_path(0, 99)).write_text("[" * 100_000), 0),
    "parseable-nesting-in-a-change": (_append(lambda ws: ws.lineage_path(1), json.dumps(
        {"event": "mutated", "time": 4e9, "frame": 20000, "iteration": 9}) [:-1] + ', "changed": ' + _nested(900) +
        ', "hyperparameters": ' + _nested(900) + "}"), 0),
    "replacement-without-donor": (_append(lambda ws: ws.lineage_path(1), json.dumps(
        {"event": "replaced", "time": 4e9, "frame": 20000, "donor_iteration": 1})), 0),
    "donor-of-the-wrong-type": (_append(lambda ws: ws.lineage_path(1), "\n".join(json.dumps(
        {"event": "replaced", "time": 4e9 + n, "frame": 20000, "donor": d, "donor_iteration": 1})
        for n, d in enumerate(["000", [0], True, 0.5, -1, None]))), 0),
    "special-numbers-in-a-change": (_append(lambda ws: ws.lineage_path(1), '{"event": "replaced", "time": Infinity, '
        '"frame": 1, "donor": 0, "donor_iteration": 1}\n{"event": "mutated", "time": NaN, "frame": 2}\n'
        '{"event": "mutated", "time": 4e9, "frame": 3, "changed": {"lr": [NaN, 1e999]}, "hyperparameters": {"lr": "x"}}'), 0),
    "self-donor-and-same-time-ping-pong": (_self_and_same_time_cycle, 0),
    # pickles that would run code, non-finite weights
    "pickle-planted-as-best": (_planted_best, 1),
    "pickle-planted-in-member-weights": (_planted_member_weights, 0),
    "nan-weights-as-best": (_nan_best, 1),
}


@pytest.mark.adversarial("hostile workspace cases survived")
@pytest.mark.parametrize("case", sorted(CASES))
def test_results_tools_survive_a_hostile_workspace(tmp_path, case):
    attack, export_code = CASES[case]
    outside, cwd, out = tmp_path / "outside", tmp_path / "cwd", tmp_path / "out"
    for folder in (outside, cwd):
        folder.mkdir()
    (outside / "victim.png").write_bytes(b"not yours")
    marker = tmp_path / "pwned"
    ws = make_workspace(tmp_path / "ws")
    attack(ws, outside, marker)
    before_ws, before_outside = snapshot(Path(ws.root)), snapshot(outside)
    tools = [[name, ws.root, *(a.format(out=out) for a in args)] for name, *args in TOOLS]
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(tools)], cwd=cwd, env=child_env(),
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{case}: hung in {(e.stderr or b'').decode().strip().splitlines()[-1:]}")
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.rsplit("CODES ", 1)[1])
    plot_code = 1 if case == "plots-folder-links-out" else 0  # refused with one line: the folder is a link
    assert codes == [0, 0, 0, 0, plot_code, export_code], proc.stderr[-3000:]
    assert not marker.exists()  # no planted code ran
    assert snapshot(outside) == before_outside  # nothing written or deleted outside
    assert os.listdir(cwd) == []  # nor where the commands ran
    image = os.path.join("plots", "population.png")
    after = snapshot(Path(ws.root))
    kept = {k: v for k, v in before_ws.items() if k != image}
    assert {k: v for k, v in after.items() if k in kept} == kept  # nothing in the workspace lost or changed
    assert set(after) - set(kept) <= {"plots", image}
    assert (after.get(image, (None,))[0] == stat.S_IFREG) == (plot_code == 0)  # a plot, never written through a link
    exported = sorted(out.glob("*.pth")) if out.exists() else []
    assert len(exported) == (export_code == 0)
    for path in exported:  # loaded the way rl_games loads a --checkpoint: an unrestricted unpickler
        from rl_games.algos_torch import torch_ext

        state = torch_ext.load_checkpoint(str(path))
        assert torch.equal(state["model"]["a2c_network.mu.weight"], _state(0)["model"]["a2c_network.mu.weight"])
        assert not marker.exists()
    if export_code:
        assert proc.stderr.strip().splitlines()[-1].startswith("export: ")  # one line says why
    if plot_code:
        assert f"plot: {os.path.join(ws.root, 'plots')} is not a folder of the workspace" in proc.stderr


def _ping_pong(ws: Workspace, replacements: int) -> None:
    """Members 0 and 1 take each other's weights in turn, ``replacements`` times, as lineage lines."""
    lines: dict[int, list[str]] = {0: [], 1: []}
    start = time.time()  # after everything make_workspace logged
    for k in range(replacements):
        member = k % 2
        lines[member].append(json.dumps({"event": "replaced", "time": start + k, "frame": (k + 1) * 4096, "iteration": k + 1,
                                         "donor": 1 - member, "donor_iteration": k, "changed": {LR: [3e-4, 6e-4]},
                                         "hyperparameters": {LR: 6e-4}, "applied": "in-place"}, sort_keys=True))
    for member, text in lines.items():
        with open(ws.lineage_path(member), "a") as f:
            f.write("\n".join(text) + "\n")


@pytest.mark.adversarial("hostile workspace cases survived")
def test_a_long_ping_pong_renders_in_linear_time(tmp_path, adversary_figure):
    ws = make_workspace(tmp_path / "ws")
    _ping_pong(ws, 6000)
    best = Record(0, 5, 6001 * 4096, 0.95, {LR: 6e-4}, time=time.time() + 7000)  # the best state comes at the end
    ws.publish(best, lambda f: ckpt.save(_state(0), f))
    ws.append_history(best)
    ws.publish_best(best)
    start = time.perf_counter()
    tree = family(Workspace(ws.root))
    text = render_text(tree)
    seconds = time.perf_counter() - start
    adversary_figure("lineage seconds for 6000 replacements", round(seconds, 3))
    assert seconds < 10
    paths = {item["member"]: item["path"] for item in tree}
    # every replacement back to the first, then member 1's own replacement by 0, then 0's start
    assert {m: len(p) for m, p in paths.items()} == {0: 6001, 1: 6002}, {m: p[:3] for m, p in paths.items()}
    times = [s["time"] for s in paths[0][:-1]]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)  # each entry once, older each step
    assert max(len(line) for line in text.splitlines()) < 200  # indentation stops growing: output linear too
    for name, args in (("plot", []), ("export", [str(tmp_path / "out")])):
        proc = subprocess.run([sys.executable, "-m", "isaaclab_pbt", name, ws.root, *args], cwd=tmp_path,
                              env=child_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    import yaml

    plan = yaml.safe_load((tmp_path / "out" / "schedule.yaml").read_text())["schedule"]
    assert [e["hyperparameters"][LR] for e in plan] == [3e-4, 6e-4]  # the walk back through all 6000 entries


def test_results_written_for_others_follow_the_umask(tmp_path):
    """An export and a plot are read by the other users of a shared folder: created as the umask says (0644 under 022)."""
    ws = make_workspace(tmp_path / "ws")
    for args in (["plot", ws.root], ["export", ws.root, str(tmp_path / "out")]):
        proc = subprocess.run([sys.executable, "-m", "isaaclab_pbt", *args], cwd=tmp_path, env=child_env(),
                              capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
        assert proc.returncode == 0, proc.stderr
    written = [Path(ws.root) / "plots" / "population.png", *sorted((tmp_path / "out").iterdir())]
    assert len(written) == 4
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: 0o644 for p in written}
