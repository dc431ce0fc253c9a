"""Reading results from a real population: plot, lineage, best export, schedule replay, TensorBoard and wandb."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.results.plot import plot_population
from isaaclab_pbt.rl_games import learner as live
from isaaclab_pbt.rl_games.replay import ReplayObserver

from .conftest import TRAIN, child_env, plant_pickle, run_population, train_epochs

P = "agent.params.config."


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """Three members on the embedded task, member 2 stalled at learning rate 1e-8."""
    tmp = tmp_path_factory.mktemp("population")
    common = ["--num_envs=64", "--max_iterations=48", "agent.pbt.enabled=True", "agent.pbt.num_policies=3",
              f"agent.pbt.directory={tmp}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=4096"]
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *([f"{P}learning_rate=1e-8"] if i == 2 else [])]
               for i in range(3)]
    run_population(tmp, members, tmp / "ws", laggard=2)
    return tmp, Workspace(str(tmp / "ws"))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "isaaclab_pbt", *args], capture_output=True, text=True, env=child_env(), timeout=120)


def test_plot_draws_every_member_and_replacement(population, tmp_path):
    tmp, ws = population
    out = tmp_path / "population.png"
    data = plot_population(ws.root, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert sorted(data["members"]) == [0, 1, 2]
    replaced = sum(1 for i in range(3) for e in ws.lineage(i) if e["event"] == "replaced")
    assert replaced > 0 and sum(len(m["replacements"]) for m in data["members"].values()) == replaced
    assert all(len(m["frames"]) == 12 for m in data["members"].values())  # every interval, despite cleanup
    assert len(ws.iterations(0)) == 3  # only 3 checkpoints kept on disk
    cli = _cli("plot", ws.root, "-o", str(tmp_path / "cli.svg"))
    assert cli.returncode == 0 and f"3 members, {replaced} replacements" in cli.stdout


def test_plot_without_output_writes_into_the_workspace_and_says_where(population, tmp_path):
    import shutil

    _, ws = population
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run([sys.executable, "-m", "isaaclab_pbt", "plot", str(copy)], cwd=cwd, capture_output=True,
                            text=True, env=child_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    image = copy / "plots" / "population.png"
    assert result.stdout.startswith(f"wrote {image}: 3 members")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(cwd) == []  # never into the folder the command ran from
    assert Workspace(str(copy)).members() == [0, 1, 2]  # plots/ is not taken for a member


def test_status_of_a_trained_population(population):
    _, ws = population
    result = _cli("status", ws.root, "--json")
    assert result.returncode == 0, result.stderr
    rows = {m["member"]: m for m in json.loads(result.stdout)["members"]}
    assert all(rows[i]["iteration"] == ws.history(i)[-1].iteration for i in range(3))
    assert all(rows[i]["state"] in ("finished", "alive", "stale") for i in range(3))
    last = rows[2]["last_replacement"]  # the stalled member took a leader's weights: as data, not text
    assert last is not None and last["event"] == "replaced" and last["donor"] in (0, 1)
    entry = [e for e in ws.lineage(2) if e["event"] == "replaced"][-1]
    assert {k: [v["old"], v["new"]] for k, v in last["changed"].items()} == entry["changed"]
    assert last["donor_iteration"] == entry["donor_iteration"] and last["time"] == entry["time"]


def test_lineage_edges_point_to_records_that_exist(population):
    _, ws = population
    result = _cli("lineage", ws.root, "--json")
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)["members"]
    assert [m["member"] for m in tree] == [0, 1, 2]
    edges = 0
    for item in tree:
        path = item["path"]
        assert path[0]["member"] == item["member"] and path[-1]["event"] == "start"
        for step, parent in zip(path, path[1:], strict=False):
            if step["event"] == "replaced":
                edges += 1
                donor_records = {r.iteration: r for r in ws.history(step["donor"])}
                assert step["donor_iteration"] in donor_records  # the donor really published that iteration
                assert parent["member"] == step["donor"]  # and the walk continues in the donor
    assert edges >= 1
    text = _cli("lineage", ws.root).stdout
    assert "member 002" in text and "took" in text and "started from scratch" in text


def test_best_export_is_loadable_by_rl_games(population, tmp_path, agent_factory):
    _, ws = population
    record, path = ws.best()
    latest = {i: ws.history(i)[-1].objective for i in range(3)}
    assert record.objective == pytest.approx(max(o for o in latest.values() if o is not None), abs=0.05)
    result = _cli("export", ws.root, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    exported = tmp_path / "out" / f"pbt_best_{record.policy_idx:03d}_{record.iteration:06d}.pth"
    plan = yaml.safe_load((tmp_path / "out" / "schedule.yaml").read_text())
    assert plan["member"] == record.policy_idx and plan["schedule"][0]["frame"] == 0
    agent, _ = agent_factory("--num_envs=64", run="play")
    agent.restore(str(exported))  # rl_games' own loader, as its play and train scripts use it
    saved = torch.load(exported, weights_only=True)
    assert all(torch.equal(agent.model.state_dict()[k], v) for k, v in saved["model"].items())
    assert torch.equal(agent.vec_env.level, saved["env_state"]["level"][:64])  # the curriculum came along


def _save_as_if_on_cuda(state, path):
    """torch.save, with every storage tagged ``cuda:0`` as a GPU member's file is: the only thing faked is the device map."""
    real = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(state, path)
    finally:
        torch.serialization.location_tag = real


def test_a_checkpoint_published_on_a_gpu_exports_to_one_any_machine_loads(population, tmp_path, agent_factory):
    import shutil

    from rl_games.algos_torch import torch_ext

    _, ws = population
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    record, best = Workspace(str(copy)).best()
    _save_as_if_on_cuda(torch.load(best, weights_only=True), best)
    if not torch.cuda.is_available():  # what a CPU-only user met before: rl_games' loader refuses the file
        with pytest.raises(RuntimeError, match="CUDA"):
            torch_ext.load_checkpoint(best)
    result = _cli("export", str(copy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    exported = tmp_path / "out" / f"pbt_best_{record.policy_idx:03d}_{record.iteration:06d}.pth"
    state = torch_ext.load_checkpoint(str(exported))  # rl_games' own loader, on this CPU-only machine
    assert all(t.device.type == "cpu" for t in state["model"].values())
    agent, _ = agent_factory("--num_envs=64", run="play_gpu_export")
    agent.restore(str(exported))
    assert all(torch.equal(agent.model.state_dict()[k], v) for k, v in state["model"].items())


@pytest.mark.adversarial("hostile workspace cases survived")
def test_export_refuses_a_planted_pickle_and_runs_no_code(population, tmp_path):
    import shutil

    _, ws = population
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    _, best = Workspace(str(copy)).best()
    marker = tmp_path / "pwned"
    plant_pickle(best, marker)
    result = _cli("export", str(copy), str(tmp_path / "out"))
    assert result.returncode == 1 and not marker.exists()
    assert result.stderr.strip().splitlines()[-1].startswith("export: the best checkpoint")
    assert not list((tmp_path / "out").glob("*.pth"))  # nothing left the workspace


@pytest.mark.adversarial("hostile workspace cases survived")
def test_an_export_runs_no_planted_code_when_rl_games_loads_it(population, tmp_path):
    """Pickles planted in every member checkpoint: the export is a fresh file that rl_games' unrestricted loader loads safely."""
    import shutil

    from rl_games.algos_torch import torch_ext

    _, ws = population
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    planted = Workspace(str(copy))
    marker = tmp_path / "pwned"
    for idx in planted.members():
        for it in planted.iterations(idx):
            plant_pickle(planted.weights_path(idx, it), marker)
    result = _cli("export", str(copy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    [exported] = (tmp_path / "out").glob("*.pth")
    state = torch_ext.load_checkpoint(str(exported))  # torch.load(weights_only=False) underneath
    assert torch.load(exported, weights_only=False).keys() == state.keys()
    assert not marker.exists()
    source = torch.load(planted.best()[1], weights_only=True)
    assert all(torch.equal(source["model"][k], v) for k, v in state["model"].items())


@pytest.mark.adversarial("hostile workspace cases survived")
def test_export_refuses_nan_weights(population, tmp_path):
    import shutil

    _, ws = population
    copy = tmp_path / "ws"
    shutil.copytree(ws.root, copy)
    _, best = Workspace(str(copy)).best()
    state = torch.load(best, weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("inf"))
    torch.save(state, best)
    result = _cli("export", str(copy), str(tmp_path / "out"))
    assert result.returncode == 1 and "NaN or infinite values in model." + name in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_replay_applies_the_schedule_at_its_frames(agent_factory):
    plan = [{"frame": 0, "hyperparameters": {P + "learning_rate": 1e-3}},
            {"frame": 1024, "hyperparameters": {P + "learning_rate": 5e-3, P + "gamma": 0.98}},
            {"frame": 1300, "hyperparameters": {P + "mini_epochs": 2}}]
    agent, _ = agent_factory(f"{P}learning_rate=1e-3", observer=lambda c: ReplayObserver(plan))
    observer = agent.algo_observer
    for _ in range(4):  # 512 frames per epoch
        train_epochs(agent, 1)
        observer.after_print_stats(agent.frame, agent.epoch_num, 0.0)
    assert [a["frame"] for a in observer.applied] == [1024, 1536]  # first epoch boundary at or after each entry
    assert agent.last_lr == 5e-3 and agent.gamma == 0.98 and agent.mini_epochs_num == 2
    assert live.read(agent, P + "learning_rate", None) == agent.optimizer.param_groups[0]["lr"] == 5e-3


def test_replay_from_the_command_line(tmp_path):
    plan = {"schedule": [{"frame": 0, "hyperparameters": {P + "learning_rate": 2e-3, P + "horizon_length": 8}},
                         {"frame": 2048, "hyperparameters": {P + "learning_rate": 4e-3}}]}
    (tmp_path / "schedule.yaml").write_text(yaml.safe_dump(plan))
    proc = subprocess.run([sys.executable, TRAIN, "--num_envs=64", "--max_iterations=6", "--pbt_replay=schedule.yaml",
                           f"{P}minibatch_size=512", f"+{P}full_experiment_name=replay"],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "logs" / "rl_games" / "point_reach" / "replay"
    cfg = yaml.safe_load((run / "params" / "agent.yaml").read_text())["params"]["config"]
    assert cfg["learning_rate"] == 2e-3 and cfg["horizon_length"] == 8  # start values, restart-only keys included
    applied = [json.loads(line) for line in (run / "replay.jsonl").read_text().splitlines()]
    assert applied == [{"frame": 2048, "scheduled_frame": 2048, "hyperparameters": {P + "learning_rate": 4e-3}}]


def test_one_tensorboard_folder_and_one_wandb_run_per_member_across_restarts(tmp_path):
    pytest.importorskip("wandb")
    env = {**child_env(), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    common = ["--num_envs=64", "--max_iterations=24", "--track", "--wandb-project-name=pbt-test", "agent.pbt.enabled=True",
              "agent.pbt.num_policies=2", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
              "agent.pbt.interval_steps=4096", "agent.pbt.apply=restart", "agent.pbt.burn_in_steps=8192"]
    members = [[f"--seed={i}", f"agent.pbt.policy_idx={i}", *common, *([f"{P}learning_rate=1e-8"] if i == 1 else [])]
               for i in range(2)]
    run_population(tmp_path, members, tmp_path / "ws", laggard=1, env=env)
    ws = Workspace(str(tmp_path / "ws"))
    assert any(e.get("applied") == "restart" for e in ws.lineage(1))
    runs = sorted((tmp_path / "logs" / "rl_games" / "point_reach").iterdir())
    assert [r.name.rsplit("_", 1)[-1] for r in runs] == ["pbt000", "pbt001"]  # one run folder per member
    for run in runs:
        offline = sorted(p.name for p in (run / "wandb").iterdir() if p.name.startswith("offline-run-"))
        ids = {name.split("-", 3)[-1] for name in offline}
        assert ids == {run.name}, offline  # every (re)start of the member logged into the same wandb run id
    restarted = [p for p in (runs[1] / "wandb").iterdir() if p.name.startswith("offline-run-")]
    assert len(restarted) == 1 + sum(1 for e in ws.lineage(1) if e.get("applied") == "restart")
    assert len(os.listdir(runs[1] / "summaries")) >= 2  # TensorBoard: one folder, an event file per process start
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(runs[1] / "summaries")).Reload().Tags()["scalars"]
    for tag in ("pbt/objective", "pbt/population_best", "pbt/population_mean", "pbt/replacements", "pbt/learning_rate", "pbt/gamma"):
        assert tag in tags, tag
