"""The PBT tick inside real rl_games agents: weights, curriculum and hyperparameters really move."""

import errno
import logging
import os
import sys
import threading
import time

import pytest
import torch

from isaaclab_pbt.core.config import PbtCfg
from isaaclab_pbt.core.workspace import Record, Workspace
from isaaclab_pbt.rl_games import checkpoint
from isaaclab_pbt.rl_games.observer import PbtObserver

from .conftest import train_epochs

P = "agent.params.config."
FRAMES_PER_EPOCH = 32 * 16


class Exec(Exception):
    """Raised by the recording exec_fn: os.execv never returns either."""


def _cfg(tmp_path, **extra):
    block = {"enabled": True, "num_policies": 2, "policy_idx": 1, "directory": str(tmp_path), "workspace": "ws",
             "interval_steps": FRAMES_PER_EPOCH, "mutation_rate": 1.0, "min_initialized": 2,
             "objective": "episode.Curriculum/adr",
             "mutation": {P + "learning_rate": "mutate_float", P + "gamma": "mutate_discount", P + "mini_epochs": "mutate_int"}}
    return PbtCfg.from_dict({**block, **extra})


@pytest.fixture
def donor(agent_factory, tmp_path):
    """Member 0: trained a little, its curriculum moved, published with a leading objective."""
    agent, _ = agent_factory(run="donor")
    train_epochs(agent, 2)
    agent.vec_env.level = torch.full((32,), 7)
    ws = Workspace(str(tmp_path / "ws"))
    state = checkpoint.published_state(agent)
    hp = {P + "learning_rate": 3e-3, P + "gamma": 0.99, P + "mini_epochs": 4}
    ws.publish(Record(0, 1, agent.frame, 0.9, hp), lambda f: checkpoint.save(state, f))
    return ws, state


def _member(agent_factory, cfg, argv=None, calls=None):
    def exec_fn(path, args):
        calls.append((path, args))
        raise Exec()

    agent, agent_cfg = agent_factory(P + "learning_rate=1e-8", run="member",
                                     observer=lambda c: PbtObserver(cfg, c, seed=5, argv=argv, exec_fn=exec_fn))
    train_epochs(agent, 1)  # collects the objective through process_infos; levels stay ~0
    return agent, agent.algo_observer


def test_in_place_swap_copies_weights_curriculum_and_live_hyperparameters(agent_factory, tmp_path, donor):
    ws, donor_state = donor
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="in-place"))
    decision = obs.tick()
    assert decision is not None and decision.donor == 0
    live = agent.model.state_dict()
    assert all(torch.equal(live[k], v) for k, v in donor_state["model"].items())
    assert torch.equal(agent.vec_env.level, torch.full((32,), 7))  # the donor's curriculum came along
    assert agent.frame == FRAMES_PER_EPOCH  # the member keeps its own frame counter
    lr = decision.hyperparameters[P + "learning_rate"]
    assert lr != 1e-8 and agent.last_lr == lr and agent.optimizer.param_groups[0]["lr"] == lr
    assert agent.gamma == decision.hyperparameters[P + "gamma"] < 1
    assert agent.mini_epochs_num == decision.hyperparameters[P + "mini_epochs"]
    [entry] = ws.lineage(1)
    assert entry["event"] == "replaced" and entry["donor"] == 0 and entry["applied"] == "in-place"
    assert entry["weights_sha256"] == checkpoint.model_digest(torch.load(ws.weights_path(0, 1), weights_only=True)["model"])
    train_epochs(agent, 1)  # training goes on from the donor's state ...
    obs.tick()  # ... and the next record is published from the live agent's values
    obs.flush()
    assert ws.read_record(1, 2).hyperparameters[P + "learning_rate"] == lr


def test_restart_re_executes_with_donor_checkpoint_and_all_flags(agent_factory, tmp_path, donor):
    ws, donor_state = donor
    argv = ["scripts/train.py", "--num_envs=32", "--device=cpu", "--max_iterations=40", "agent.pbt.enabled=True",
            P + "learning_rate=1e-8", "+env.max_level=30"]
    calls = []
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="restart"), argv=argv, calls=calls)
    with pytest.raises(Exec):
        obs.tick()
    [(path, args)] = calls
    assert path == sys.executable and args[0] == sys.executable
    for kept in argv[:4] + ["agent.pbt.enabled=True", "+env.max_level=30"]:
        assert kept in args
    ckpt = next(a.split("=", 1)[1] for a in args if a.startswith("--checkpoint="))
    assert os.path.dirname(ckpt) == os.path.abspath(agent.nn_dir)
    restored = torch.load(ckpt, weights_only=True)
    assert all(torch.equal(restored["model"][k], v) for k, v in donor_state["model"].items())
    [entry] = ws.lineage(1)
    assert f"{P}learning_rate={entry['hyperparameters'][P + 'learning_rate']!r}" in args
    assert f"+{P}full_experiment_name={agent.experiment_name}" in args
    assert any(a.startswith("--seed=") for a in args) and entry["applied"] == "restart"


def test_restart_flushes_the_publish_before_re_executing(agent_factory, tmp_path, donor, monkeypatch):
    ws, _ = donor
    calls, real_save = [], checkpoint.save

    def slow_in_background(state, f):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.5)
        real_save(state, f)

    monkeypatch.setattr(checkpoint, "save", slow_in_background)
    _, obs = _member(agent_factory, _cfg(tmp_path, apply="restart"), argv=["scripts/train.py"], calls=calls)
    with pytest.raises(Exec):
        obs.tick()
    assert ws.read_record(1, 1) is not None and os.path.isfile(ws.weights_path(1, 1))


def test_tick_returns_before_the_state_is_on_disk_and_publishes_a_cpu_copy(agent_factory, tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, apply="in-place", num_policies=1, min_initialized=1, policy_idx=0)
    agent, obs = _member(agent_factory, cfg)
    ws = Workspace(str(tmp_path / "ws"))
    release, saved = threading.Event(), []
    real_save = checkpoint.save

    def slow_save(state, f):
        saved.append(state)
        assert release.wait(30)
        real_save(state, f)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    obs.tick()
    assert ws.read_record(0, 1) is None and not os.path.exists(ws.weights_path(0, 1))
    live = agent.model.state_dict()
    with torch.no_grad():
        for p in agent.model.parameters():
            p.add_(1.0)  # training goes on while the state is written
    release.set()
    obs.flush()
    assert ws.read_record(0, 1) is not None
    assert os.stat(ws.record_path(0, 1)).st_mtime_ns >= os.stat(ws.weights_path(0, 1)).st_mtime_ns
    [state] = saved
    tensors = [t for t in state["model"].values()] + [t for s in state["optimizer"]["state"].values() for t in s.values()
                                                      if isinstance(t, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert all(state["model"][k].data_ptr() != live[k].data_ptr() for k in live)
    published = torch.load(ws.weights_path(0, 1), weights_only=True)["model"]
    assert all(torch.equal(published[k], before[k]) for k in before)
    assert not all(torch.equal(live[k], before[k]) for k in before)


def test_a_failing_publish_is_logged_and_training_goes_on(agent_factory, tmp_path, monkeypatch, caplog):
    """An I/O error that the next publish may not meet again; a full disk stops the member (tests/test_chaos_member.py)."""
    cfg = _cfg(tmp_path, apply="in-place", num_policies=1, min_initialized=1, policy_idx=0)
    agent, obs = _member(agent_factory, cfg)
    real_save = checkpoint.save

    def full(state, f):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoint, "save", full)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            obs.tick()
            train_epochs(agent, 1)
        monkeypatch.setattr(checkpoint, "save", real_save)
        obs.tick()
        obs.flush()
    warnings = [r.getMessage() for r in caplog.records if "failed in the background" in r.getMessage()]
    assert len(warnings) == 1 and "Input/output error" in warnings[0]
    assert Workspace(str(tmp_path / "ws")).latest(0).iteration == 3


def test_auto_restarts_only_for_keys_that_cannot_change_live(agent_factory, tmp_path, donor):
    calls = []
    ws, state = donor
    hp = {P + "learning_rate": 3e-3, P + "gamma": 0.99, P + "mini_epochs": 4}
    # one whitelist across the population (members with others are refused): the donor's gains the horizon
    ws.publish(Record(0, 2, 2 * FRAMES_PER_EPOCH, 0.9, {**hp, P + "horizon_length": 16}), lambda f: checkpoint.save(state, f))
    cfg = _cfg(tmp_path, apply="auto", mutation={**{k: _cfg(tmp_path).mutation[k] for k in hp}, P + "horizon_length": "mutate_int"})
    agent, obs = _member(agent_factory, cfg, argv=["scripts/train.py"], calls=calls)
    with pytest.raises(Exec):
        obs.tick()
    assert any(a.startswith(P + "horizon_length=") for a in calls[0][1])
    calls.clear()
    ws.publish(Record(0, 3, 3 * FRAMES_PER_EPOCH, 0.9, hp), lambda f: checkpoint.save(state, f))
    restarted = ["scripts/train.py", "--checkpoint", "pbt.pth"]  # member 1 has records now: it resumes
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="auto"), argv=restarted, calls=calls)
    assert obs.tick() is not None and calls == []  # all live keys: swapped in place


def test_corrupt_donor_weights_leave_the_member_training_as_it_was(agent_factory, tmp_path, donor, caplog):
    ws, _ = donor
    with open(ws.weights_path(0, 1), "wb") as f:
        f.write(b"\x80\x02not a checkpoint")
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="in-place"))
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        obs.tick()
    assert "cannot load donor weights" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in agent.model.state_dict().items())
    assert agent.last_lr == 1e-8
    [entry] = ws.lineage(1)  # the rejection is on record
    assert entry["event"] == "rejected" and entry["donor"] == 0 and "cannot load donor weights" in entry["reason"]


def test_in_place_mode_refuses_restart_only_keys_at_start(agent_factory, tmp_path):
    from isaaclab_pbt.core.config import PbtConfigError

    cfg = _cfg(tmp_path, apply="in-place", mutation={P + "horizon_length": "mutate_int"})
    with pytest.raises(PbtConfigError, match="agent.pbt.apply: 'in-place' cannot change agent.params.config.horizon_length"):
        agent_factory(observer=lambda c: PbtObserver(cfg, c, seed=0))


def test_grace_after_a_restart_counts_from_the_restored_frame(agent_factory, tmp_path, donor):
    """A restarted or resumed process comes back at its checkpoint's frame: burn-in starts there, not at 0."""
    cfg = _cfg(tmp_path, apply="in-place", burn_in_steps=3 * FRAMES_PER_EPOCH)
    agent, obs = agent_factory(P + "learning_rate=1e-8", run="member", observer=lambda c: PbtObserver(cfg, c, seed=5))
    agent.frame = 40 * FRAMES_PER_EPOCH  # as rl_games restores it from a checkpoint
    obs = agent.algo_observer
    train_epochs(agent, 1)
    assert obs.tick() is None and obs.member.burn_in_until == 43 * FRAMES_PER_EPOCH
    train_epochs(agent, 1)
    obs.tick()
    assert ws_lineage(tmp_path) == []  # still in its grace period although the donor leads
    train_epochs(agent, 1)
    assert obs.tick() is not None and ws_lineage(tmp_path)[0]["frame"] == 43 * FRAMES_PER_EPOCH


def ws_lineage(tmp_path):
    return Workspace(str(tmp_path / "ws")).lineage(1)


def test_diversify_mutates_each_fresh_member_once_and_logs_it(tmp_path):
    from isaaclab_pbt.rl_games.train import configure, parse_args

    def member(idx, *extra):
        args, ov = parse_args([f"--seed={idx}", *extra, "agent.pbt.enabled=True", f"agent.pbt.policy_idx={idx}",
                               f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.diversify=True",
                               "agent.pbt.mutation_rate=0.0"])  # the launch mutation ignores the rate: every key moves
        agent_cfg, _, pbt = configure(args, ov)
        return {k: v for k, v in pbt.start_values(agent_cfg).items()}

    ws = Workspace(str(tmp_path / "ws"))
    args, ov = parse_args(["agent.pbt.enabled=True", f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=plain"])
    agent_cfg, _, pbt = configure(args, ov)
    shipped = pbt.start_values(agent_cfg)
    a, b = member(0), member(1)
    assert a != b and set(a) == set(shipped) and all(a[k] != shipped[k] for k in a)
    [entry] = ws.lineage(0)
    assert entry["event"] == "diversified" and entry["frame"] == 0 and entry["hyperparameters"] == a
    assert member(0) == a  # same seed and member: the same draw
    resumed = member(0, f"--checkpoint={tmp_path / 'x.pth'}")
    assert resumed != a and len(ws.lineage(0)) == 2  # a restart or resume keeps its values (from its overrides)


def test_restarts_keep_only_the_newest_pbt_copies_and_every_rl_games_checkpoint_in_nn(agent_factory, tmp_path, donor):
    from isaaclab_pbt.rl_games.learner import KEEP_NN_COPIES

    calls = []
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="restart"), argv=["scripts/train.py"], calls=calls)
    nn = agent.nn_dir
    os.makedirs(nn, exist_ok=True)
    own = {"member.pth": b"rl_games best", "last_member_ep_5_rew_1.0.pth": b"rl_games last"}
    earlier = [f"pbt_{i:06d}_from_009.pth" for i in range(1, 6)] + [f"restore_pbt_{i:06d}_from_009.pth" for i in range(1, 6)]
    now = time.time()
    for n, name in enumerate([*own, *earlier]):  # earlier restarts, oldest first
        with open(os.path.join(nn, name), "wb") as f:
            f.write(own.get(name, b"an earlier PBT copy"))
        os.utime(os.path.join(nn, name), (now - 100 + n, now - 100 + n))
    with pytest.raises(Exec):
        obs.tick()
    ckpt = os.path.basename(next(a.split("=", 1)[1] for a in calls[0][1] if a.startswith("--checkpoint=")))
    names = set(os.listdir(nn))
    assert sorted(n for n in names if n.startswith("pbt_")) == sorted([ckpt, "pbt_000005_from_009.pth"][:KEEP_NN_COPIES])
    assert sorted(n for n in names if n.startswith("restore_")) == [f"restore_pbt_{i:06d}_from_009.pth" for i in (4, 5)]
    for name, data in own.items():  # rl_games' own checkpoints are never PBT's to delete
        assert open(os.path.join(nn, name), "rb").read() == data


def test_replacements_count_on_from_the_lineage_after_a_restart(agent_factory, tmp_path, donor):
    """pbt/replacements counts the member's whole run: a restarted process starts from its lineage, not from 0."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws, _ = donor
    for event in ("replaced", "mutated", "rejected", "replaced", "finished"):
        ws.append_lineage(1, {"event": event, "time": time.time(), "frame": 0, "iteration": 0})
    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="in-place"))
    assert obs.member.replacements == 3  # rejections and the end of a run are not replacements
    decision = obs.tick()
    assert decision is not None and obs.member.replacements == 4
    agent.writer.flush()
    scalars = EventAccumulator(agent.summaries_dir).Reload().Scalars("pbt/replacements")
    assert [s.value for s in scalars] == [3.0]  # logged before this tick's replacement, which the next tick shows


@pytest.mark.adversarial("configs rejected")
def test_a_wrong_objective_key_is_named_at_once_and_stops_the_member(agent_factory, tmp_path, donor, caplog):
    from isaaclab_pbt.core.errors import UsageError
    from isaaclab_pbt.core.member import MISSING_OBJECTIVE_INTERVALS

    agent, obs = _member(agent_factory, _cfg(tmp_path, apply="in-place", objective="episode.Curriculum/adrr"))
    with caplog.at_level(logging.WARNING, logger="isaaclab_pbt"):
        obs.tick()
        first = [r.getMessage() for r in caplog.records if "adrr" in r.getMessage()]
        assert len(first) == 1 and "episode.Curriculum/adr" in first[0].replace("episode.Curriculum/adrr", "")
        for _ in range(MISSING_OBJECTIVE_INTERVALS - 2):
            train_epochs(agent, 1)
            obs.tick()
        train_epochs(agent, 1)
        with pytest.raises(UsageError) as stopped:
            obs.tick()
    message = str(stopped.value)
    assert "\n" not in message and message.startswith("agent.pbt.objective: 'episode.Curriculum/adrr'")
    assert "episode.Curriculum/adr," in message + "," and len([r for r in caplog.records if "adrr" in r.getMessage()]) == 1


@pytest.mark.adversarial("hostile workspace cases survived")
def test_hostile_donor_hyperparameters_never_reach_the_restart_command_line(agent_factory, tmp_path, donor):
    ws, state = donor
    hostile = {P + "learning_rate": 1e30, P + "gamma": 0.99, P + "mini_epochs": 100000, "--checkpoint": 1.0, "--seed": 7.0}
    ws.publish(Record(0, 2, 2 * FRAMES_PER_EPOCH, 0.9, hostile), lambda f: checkpoint.save(state, f))
    calls = []
    cfg = _cfg(tmp_path, apply="restart", bounds={P + "mini_epochs": [1, 8]})
    agent, obs = _member(agent_factory, cfg, argv=["scripts/train.py", "--num_envs=32"], calls=calls)
    with pytest.raises(Exec):
        obs.tick()
    [(_, args)] = calls
    [entry] = ws.lineage(1)
    assert entry["donor"] == 0 and entry["donor_iteration"] == 2  # the hostile record was the one taken
    assert [a for a in args if a.startswith("--checkpoint")] == [a for a in args if "--checkpoint=" in a and "pbt_" in a]
    assert len([a for a in args if a.startswith("--checkpoint")]) == 1 and "--seed=7" not in args
    values = dict(a.split("=", 1) for a in args if a.startswith(P))
    assert int(values[P + "mini_epochs"]) <= 8 and float(values[P + "learning_rate"]) <= 1.0
