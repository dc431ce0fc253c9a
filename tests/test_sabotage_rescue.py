"""The same 4-member sabotage scenario under every RL library: real processes, real training, no mocks.

Four members train the embedded PointReach task; member 3 starts with a learning rate of 1e-8,
so it cannot learn. Each library's population must rescue it in place: member 3 takes a donor's
published state (the digest in its lineage is the donor's), trains on with the donor's learning
rate read back from its live optimiser, and its objective then rises far above what it had.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from isaaclab_pbt.core.workspace import Workspace

from .conftest import ROOT, run_population

#: library -> (train script, the learning rate's name, the module and class of its learner)
LIBRARIES = {
    "rl_games": ("scripts/train.py", "agent.params.config.learning_rate", "isaaclab_pbt.rl_games.learner", "RlGamesLearner"),
    "rsl_rl": ("scripts/rsl_rl/train.py", "agent.algorithm.learning_rate", "isaaclab_pbt.rsl_rl.learner", "RslRlLearner"),
    "skrl": ("scripts/skrl/train.py", "agent.agent.learning_rate", "isaaclab_pbt.skrl.learner", "SkrlLearner"),
}
MEMBERS, SABOTAGED, ITERATIONS, INTERVAL = 4, 3, 60, 4096  # 64 envs x 16 steps: 15 intervals of 4 iterations


def _records(ws, idx):
    return [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_a_sabotaged_member_is_rescued_in_place(tmp_path, library):
    if library != "rl_games":
        pytest.importorskip(library)
    script, lr, module, learner_class = LIBRARIES[library]
    learner = getattr(importlib.import_module(module), learner_class)
    common = ["--task=PointReach-v0", "--headless", "--num_envs=64", f"--max_iterations={ITERATIONS}", "--device=cpu",
              "agent.pbt.enabled=True", f"agent.pbt.num_policies={MEMBERS}", f"agent.pbt.directory={tmp_path}",
              "agent.pbt.workspace=ws", f"agent.pbt.interval_steps={INTERVAL}", "agent.pbt.min_initialized=3",
              "agent.pbt.keep_checkpoints=100", "agent.pbt.apply=in-place"]
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *([f"{lr}=1e-8"] if i == SABOTAGED else [])]
               for i in range(MEMBERS)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=SABOTAGED, script=str(ROOT / script))
    ws = Workspace(str(tmp_path / "ws"))

    replaced = [e for e in ws.lineage(SABOTAGED) if e["event"] == "replaced"]
    assert replaced, (tmp_path / f"member{SABOTAGED}.log").read_text()[-3000:]
    first = replaced[0]
    assert first["donor"] != SABOTAGED and first["applied"] == "in-place"
    # the state the live learner had right after the swap is exactly the donor's published one
    donor_state = torch.load(ws.weights_path(first["donor"], first["donor_iteration"]), weights_only=True)
    assert first["weights_sha256"] == learner.digest(None, donor_state)
    # records are read from the live learner: sabotaged before the swap, the donor's rate after it
    before = [r for r in _records(ws, SABOTAGED) if r.frame <= first["frame"]]
    after = [r for r in _records(ws, SABOTAGED) if r.frame > first["frame"]]
    assert before and all(r.hyperparameters[lr] == 1e-8 for r in before)
    assert after and after[0].hyperparameters[lr] == first["hyperparameters"][lr] != 1e-8
    best_after = max(r.objective for r in after)
    print(f"{library}: sabotaged member objective {first['objective']:.4f} at the swap, best after {best_after:.4f}")
    assert best_after > 5 * max(first["objective"], 0.01)  # and it learns from there
    assert all(len(ws.iterations(i)) == ITERATIONS * 1024 // INTERVAL for i in range(MEMBERS))
    assert {ws.latest(i).library for i in range(MEMBERS)} == {library}
