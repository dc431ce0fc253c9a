"""Real skrl populations: one OS process per member running scripts/skrl/train.py (skrl 2.x, no mocks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("skrl")
pytest.importorskip("rsl_rl")

from isaaclab_pbt.core.workspace import Workspace  # noqa: E402

from .conftest import ROOT, run_population  # noqa: E402

SKRL_TRAIN = str(ROOT / "scripts" / "skrl" / "train.py")
RSL_RL_TRAIN = str(ROOT / "scripts" / "rsl_rl" / "train.py")
A = "agent.agent."


def _population(tmp_path, n, laggard, extra, common):
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", f"agent.pbt.num_policies={n}", *common,
                *(extra if i == laggard else [])] for i in range(n)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=laggard, script=SKRL_TRAIN)
    return Workspace(str(tmp_path / "ws"))


def _records(ws, idx):
    return [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]


def test_an_skrl_member_restarts_from_the_donor_in_the_same_run_folder(tmp_path):
    common = ["--num_envs=64", "--max_iterations=36", "agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}",
              "agent.pbt.workspace=ws", "agent.pbt.interval_steps=4096", "agent.pbt.keep_checkpoints=100",
              "agent.pbt.apply=restart"]
    ws = _population(tmp_path, 2, 1, [f"{A}learning_rate=1e-8"], common)

    restarts = [e for e in ws.lineage(1) if e.get("applied") == "restart"]
    assert restarts, (tmp_path / "member1.log").read_text()[-3000:]
    log = (tmp_path / "member1.log").read_text()
    folders = {line.split("run folder ")[1] for line in log.splitlines() if "run folder " in line}
    assert log.count("run folder ") == 1 + len(restarts) and len(folders) == 1
    # a progress line per update, counted across restarts: the first once, the last at the budget
    assert log.count("skrl iteration 1/36 of ") == 1 and "skrl iteration 36/36 of " in log
    folder = folders.pop()
    frames = [r.frame for r in _records(ws, 1)]
    assert frames == sorted(frames) and frames[-1] == 36 * 64 * 16  # the budget is kept across restarts
    last = restarts[-1]
    after = [r for r in _records(ws, 1) if r.frame > last["frame"]]
    assert not after or after[0].hyperparameters[A + "learning_rate"] == last["hyperparameters"][A + "learning_rate"]
    # the restart copies sit next to skrl's own checkpoints; only the newest are kept
    copies = sorted((tmp_path / folder / "checkpoints").glob("pbt_*.pt"))
    assert copies and len(copies) <= 2
    assert ws.lineage(1)[-1]["event"] == "finished"


def test_a_population_mixing_skrl_and_rsl_rl_is_refused_with_one_line(tmp_path):
    common = ["--num_envs=32", "agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
              "agent.pbt.interval_steps=1024", "agent.pbt.num_policies=2", "agent.pbt.min_initialized=1"]
    run_population(tmp_path, [["--max_iterations=4", "agent.pbt.policy_idx=0", *common]], tmp_path / "ws", script=RSL_RL_TRAIN)
    proc = subprocess.run(
        [sys.executable, SKRL_TRAIN, "--max_iterations=8", "agent.pbt.policy_idx=1", *common],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("train: error: agent.pbt.workspace: member 000 trains with rsl_rl but member 001 (this one) "
                    "trains with skrl; one population trains with one RL library"), last
