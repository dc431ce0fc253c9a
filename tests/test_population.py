"""Real populations: one OS process per member running scripts/train.py with real rl_games training."""

import os

import yaml

from isaaclab_pbt.core.workspace import Workspace

from .conftest import run_population

P = "agent.params.config."


def _run_population(tmp_path, n, laggard, extra, common):
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", f"agent.pbt.num_policies={n}", *common,
                *(extra if i == laggard else [])] for i in range(n)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=laggard)
    return Workspace(str(tmp_path / "ws"))


def _records(ws, idx):
    return [r for r in (ws.read_record(idx, it) for it in ws.iterations(idx)) if r is not None]


def test_restart_resumes_from_the_donor_checkpoint_keeping_every_flag(tmp_path):
    common = ["--headless", "--num_envs=64", "--max_iterations=36", "--device=cpu", "agent.pbt.enabled=True",
              f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=4096",
              "agent.pbt.keep_checkpoints=100", "agent.pbt.apply=restart", f"{P}bounds_loss_coef=0.0002"]
    ws = _run_population(tmp_path, 2, 1, [f"{P}learning_rate=1e-8"], common)

    restarts = [e for e in ws.lineage(1) if e.get("applied") == "restart"]
    assert restarts, (tmp_path / "member1.log").read_text()[-3000:]
    last = restarts[-1]
    runs = os.listdir(tmp_path / "logs" / "rl_games" / "point_reach")
    [run] = [r for r in runs if r.endswith("_pbt001")]  # one run folder across restarts
    params = tmp_path / "logs" / "rl_games" / "point_reach" / run / "params"
    argv = yaml.safe_load((params / "command.yaml").read_text())["argv"]
    for token in common + ["agent.pbt.policy_idx=1", f"{P}learning_rate={last['hyperparameters'][P + 'learning_rate']!r}"]:
        assert token in argv, token
    assert "--seed=1" not in argv and any(a.startswith("--seed=") for a in argv)  # a fresh seed
    assert any(a.startswith("--checkpoint=") and "pbt_" in a for a in argv)
    agent = yaml.safe_load((params / "agent.yaml").read_text())
    cfg = agent["params"]["config"]
    assert cfg["learning_rate"] == last["hyperparameters"][P + "learning_rate"]
    assert cfg["bounds_loss_coef"] == 0.0002 and cfg["full_experiment_name"] == run
    # the same OS process (execv); its frame counter went on from where it was, not from zero
    records = _records(ws, 1)
    resumed = [r for r in records if r.time > last["time"]]
    assert resumed and all(r.pid == records[0].pid for r in records)
    assert resumed[0].frame == last["frame"] + 4096 and resumed[0].iteration == last["iteration"] + 1
    assert resumed[-1].hyperparameters[P + "learning_rate"] == last["hyperparameters"][P + "learning_rate"]
    log = (tmp_path / "member1.log").read_text()
    assert log.count("=> loading checkpoint") == len(restarts)


def test_the_strongest_recipe_runs_end_to_end_and_rescues_the_sabotaged_member(tmp_path):
    """Fractions, noise guard, equal frames, either values, resampling and launch diversification, in real processes."""
    common = ["--headless", "--num_envs=64", "--max_iterations=48", "--device=cpu", "agent.pbt.enabled=True",
              f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=4096",
              "agent.pbt.min_initialized=3", "agent.pbt.keep_checkpoints=2", "agent.pbt.apply=in-place",
              "agent.pbt.selection=fractions", "agent.pbt.noise_guard=True", "agent.pbt.compare=equal_frames",
              "agent.pbt.hyperparameters_from=either", "agent.pbt.diversify=True", "agent.pbt.resample_probability=0.25",
              f"+agent.pbt.bounds.{P}learning_rate=[1e-5,1e-2]",
              f"agent.pbt.mutation={{{P}learning_rate: mutate_float, {P}entropy_coef: mutate_float}}"]
    ws = _run_population(tmp_path, 3, 2, [f"{P}learning_rate=1e-8", "agent.pbt.diversify=False"], common)

    for i in (0, 1):
        first = ws.lineage(i)[0]
        assert first["event"] == "diversified" and first["frame"] == 0
        assert ws.history(i)[0].hyperparameters == first["hyperparameters"]  # trained with the diversified values
    assert ws.history(2)[0].hyperparameters[P + "learning_rate"] == 1e-8
    replaced = [e for e in ws.lineage(2) if e["event"] == "replaced"]
    assert replaced and replaced[0]["donor"] in (0, 1), (tmp_path / "member2.log").read_text()[-3000:]
    # it started last, so the others were ahead: it was ranked against their records at its own frame count,
    # and took its donor's newest weights
    for entry in replaced:
        assert len(entry["ranked"]) == 3 and all(frame <= entry["frame"] for frame, _ in entry["ranked"].values())
    assert any(e["donor_frame"] > e["frame"] for e in replaced)
    # no iteration was lost, and cleanup kept only the 2 newest weights of each member
    assert [r.iteration for r in ws.history(0)] == list(range(1, 13))
    assert all(len(ws.iterations(i)) == 2 for i in range(3))
    for i in range(3):  # each ended normally, and says so last, at its final frame
        *_, last = ws.lineage(i)
        assert last["event"] == "finished" and last["iteration"] == ws.history(i)[-1].iteration
