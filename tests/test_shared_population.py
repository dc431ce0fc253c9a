"""A whole population in one process (``agent.pbt.mode=shared``): real rl_games learners on blocks of one env."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from isaaclab_pbt.core.workspace import Workspace
from isaaclab_pbt.rl_games.learner import RlGamesLearner
from isaaclab_pbt.shared.lockstep import LockstepEnv
from isaaclab_pbt.tasks.point_reach import PointReachEnv


def _step_blocks(lockstep, actions):
    """Each block's actions from its own thread, as learners give them; returns each block's result."""
    results = [None] * len(actions)

    def run(idx):
        results[idx] = lockstep.step_block(idx, actions[idx])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_each_block_steps_with_its_own_actions_and_sees_only_its_envs():
    env = PointReachEnv(8, seed=0, num_blocks=2)
    lockstep = LockstepEnv(env, 2)
    env.level[:4], env.level[4:] = 10, 40  # block 0 low in its curriculum, block 1 high
    vel = env.vel.clone()
    (obs0, rew0, done0, info0), (obs1, rew1, done1, info1) = _step_blocks(lockstep, [torch.zeros(4, 2), torch.ones(4, 2)])
    assert lockstep.steps == 1  # one env step for both blocks
    assert obs0.shape == obs1.shape == (4, 5) and rew0.shape == done1.shape == (4,)
    assert torch.allclose(env.vel[:4], 0.9 * vel[:4])  # block 0's actions were zeros ...
    assert torch.allclose(env.vel[4:], 0.9 * vel[4:] + 2.0 * env.dt)  # ... and block 1's ones
    assert torch.equal(obs1, env._obs()[4:])
    # the objective of a block is its own envs' curriculum, not the population's
    assert info0["episode"]["Curriculum/adr"].item() == pytest.approx(10 / 50, abs=0.01)
    assert info1["episode"]["Curriculum/adr"].item() == pytest.approx(40 / 50, abs=0.01)
    assert info1["time_outs"].shape == (4,)


def test_a_donor_blocks_curriculum_replaces_only_the_receivers_block():
    env = PointReachEnv(8, seed=0, num_blocks=2)
    lockstep = LockstepEnv(env, 2)
    env.level = torch.tensor([1, 2, 3, 4, 30, 31, 32, 33])
    donor = lockstep.get_block_state(1)
    assert donor["level"].tolist() == [30, 31, 32, 33]
    lockstep.set_block_state(0, donor)
    assert env.level.tolist() == [30, 31, 32, 33, 30, 31, 32, 33]


def test_a_failing_learner_releases_the_others():
    lockstep = LockstepEnv(PointReachEnv(8, seed=0, num_blocks=2), 2, timeout=30)
    errors = []

    def wait():
        try:
            lockstep.step_block(0, torch.zeros(4, 2))
        except threading.BrokenBarrierError as e:
            errors.append(e)

    t = threading.Thread(target=wait)
    t.start()
    lockstep.abort()  # what the driver does when block 1's learner raised
    t.join(timeout=10)
    assert not t.is_alive() and errors


MEMBERS, SABOTAGED, ITERATIONS, INTERVAL = 4, 3, 60, 4096  # the scenario of test_sabotage_rescue.py


def test_a_one_process_population_rescues_a_sabotaged_member_in_memory(tmp_path):
    from isaaclab_pbt.rl_games.shared import train_shared
    from isaaclab_pbt.rl_games.train import configure, parse_args

    lr = "agent.params.config.learning_rate"
    args, overrides = parse_args(["--task=PointReach-v0", "--num_envs=64", f"--max_iterations={ITERATIONS}", "--seed=0",
                                  "agent.pbt.enabled=True", "agent.pbt.mode=shared", f"agent.pbt.num_policies={MEMBERS}",
                                  f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
                                  f"agent.pbt.interval_steps={INTERVAL}", "agent.pbt.keep_checkpoints=100"])
    agent_cfg, env_cfg, pbt = configure(args, overrides)

    def sabotage(idx, member_cfg):
        if idx == SABOTAGED:
            member_cfg["params"]["config"]["learning_rate"] = 1e-8

    observers = train_shared(args, agent_cfg, env_cfg, pbt, command=[], configure_member=sabotage)
    ws = Workspace(str(tmp_path / "ws"))
    records = {i: [r for r in (ws.read_record(i, it) for it in ws.iterations(i)) if r is not None] for i in range(MEMBERS)}
    assert {r.pid for rs in records.values() for r in rs} == {os.getpid()}  # one process trained all of them
    assert all(len(records[i]) == ITERATIONS * 1024 // INTERVAL for i in range(MEMBERS))
    # every member trained its own block: its own run folder, its own learner
    assert len({o.member.learner.algo for o in observers}) == MEMBERS
    assert len(list((tmp_path / "logs" / "rl_games" / "point_reach").iterdir())) == MEMBERS

    replaced = [e for e in ws.lineage(SABOTAGED) if e["event"] == "replaced"]
    assert replaced, [e["event"] for e in ws.lineage(SABOTAGED)]
    first = replaced[0]
    assert first["applied"] == "in-place" and first["donor"] != SABOTAGED
    # the donor's state was taken from memory, and it is the very state the donor published
    published = torch.load(ws.weights_path(first["donor"], first["donor_iteration"]), weights_only=True)
    assert first["weights_sha256"] == RlGamesLearner.digest(None, published)
    before = [r for r in records[SABOTAGED] if r.frame <= first["frame"]]
    after = [r for r in records[SABOTAGED] if r.frame > first["frame"]]
    assert before and all(r.hyperparameters[lr] == 1e-8 for r in before)
    assert after[0].hyperparameters[lr] == first["hyperparameters"][lr] != 1e-8
    live = observers[SABOTAGED].member.learner
    assert live.read(lr, 1e-8) == records[SABOTAGED][-1].hyperparameters[lr] != 1e-8  # in the running agent
    best_after = max(r.objective for r in after)
    print(f"one process: sabotaged member objective {first['objective']:.4f} at the swap, best after {best_after:.4f}")
    assert best_after > 5 * max(first["objective"], 0.01)


@pytest.mark.parametrize("script, mode", [("train.py", "shared"), ("rsl_rl/train.py", "shared"), ("skrl/train.py", "shared"),
                                          ("rsl_rl/train.py", "batched"), ("train.py", "batched")])
def test_a_killed_one_process_population_resumes_from_its_workspace(tmp_path, script, mode):
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT, child_env

    if "/" in script:
        pytest.importorskip(script.split("/")[0])
    common = [str(ROOT / "scripts" / script), "--task=PointReach-v0", "--num_envs=32", "--max_iterations=40", "--seed=0",
              "agent.pbt.enabled=True", f"agent.pbt.mode={mode}", "agent.pbt.num_policies=3",
              f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws", "agent.pbt.interval_steps=1024",
              "agent.pbt.keep_checkpoints=100"]
    ws = Workspace(str(tmp_path / "ws"))
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen([sys.executable, *common], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=child_env())
        end = time.monotonic() + 300
        while not all(len(ws.iterations(i)) >= 3 for i in range(3)):
            assert first.poll() is None and time.monotonic() < end, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = {i: ws.iterations(i)[-1] for i in range(3)}
    common_iteration = min(killed_at.values())  # where every member had published: where all of them go on from
    second = subprocess.run([sys.executable, *common, f"--checkpoint={tmp_path / 'ws'}"], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for i in range(3):
        records = [ws.read_record(i, it) for it in ws.iterations(i)]
        assert [r.iteration for r in records] == list(range(1, 21))  # 40 epochs of 32 x 16 frames, one record each 1024
        pids = [r.pid for r in records]
        assert len(set(pids)) == 2 and pids[common_iteration] != pids[common_iteration - 1]  # the second process went on
        assert len({r.run for r in records}) == 1  # the same run, resumed
        assert f"member {i:03d} resumes from {ws.weights_path(i, common_iteration)}" in second.stdout + second.stderr


#: (library, mode) -> (its learning rate's name, the section of its agent config holding it, the driver, the learning
#: rate a learner trains with now: its library's running optimiser, or for a batched lane its entry of the update's tensor)
OTHERS = {
    ("rsl_rl", "shared"): ("agent.algorithm.learning_rate", "algorithm", "shared.train_shared",
                           lambda learner: learner.runner.alg.optimizer.param_groups[0]["lr"]),
    ("skrl", "shared"): ("agent.agent.learning_rate", "agent", "shared.train_shared",
                         lambda learner: learner.agent.optimizer.param_groups[0]["lr"]),
    ("rsl_rl", "batched"): ("agent.algorithm.learning_rate", "algorithm", "batched.train_batched",
                            lambda learner: float(learner.runner.ppo.hp["learning_rate"][learner.idx])),
}


@pytest.mark.parametrize("library, mode", list(OTHERS))
def test_a_one_process_population_of_another_library_rescues_a_sabotaged_member_in_memory(tmp_path, library, mode):
    import importlib

    pytest.importorskip(library)
    lr, section, driver, live_lr = OTHERS[(library, mode)]
    train = importlib.import_module(f"isaaclab_pbt.{library}.train")
    module, function = driver.split(".")
    train_population = getattr(importlib.import_module(f"isaaclab_pbt.{library}.{module}"), function)
    args, agent_cfg, pbt = train.configure(["--task=PointReach-v0", "--num_envs=64", f"--max_iterations={ITERATIONS}", "--seed=0",
                                            "agent.pbt.enabled=True", f"agent.pbt.mode={mode}", f"agent.pbt.num_policies={MEMBERS}",
                                            f"agent.pbt.directory={tmp_path}", "agent.pbt.workspace=ws",
                                            f"agent.pbt.interval_steps={INTERVAL}", "agent.pbt.keep_checkpoints=100"])

    def sabotage(idx, member_cfg):
        if idx == SABOTAGED:
            member_cfg[section]["learning_rate"] = 1e-8

    learners = train_population(args, agent_cfg, pbt, command=None, configure_member=sabotage)
    ws = Workspace(str(tmp_path / "ws"))
    records = {i: [r for r in (ws.read_record(i, it) for it in ws.iterations(i)) if r is not None] for i in range(MEMBERS)}
    assert {r.pid for rs in records.values() for r in rs} == {os.getpid()}
    assert {r.library for rs in records.values() for r in rs} == {library}
    assert all(len(records[i]) == ITERATIONS * 1024 // INTERVAL for i in range(MEMBERS))
    replaced = [e for e in ws.lineage(SABOTAGED) if e["event"] == "replaced"]
    assert replaced, [e["event"] for e in ws.lineage(SABOTAGED)]
    first = replaced[0]
    published = torch.load(ws.weights_path(first["donor"], first["donor_iteration"]), weights_only=True)
    assert first["applied"] == "in-place" and first["weights_sha256"] == type(learners[0]).digest(None, published)
    after = [r for r in records[SABOTAGED] if r.frame > first["frame"]]
    assert after[0].hyperparameters[lr] == first["hyperparameters"][lr] != 1e-8
    assert live_lr(learners[SABOTAGED]) == records[SABOTAGED][-1].hyperparameters[lr]  # what training uses now
    best_after = max(r.objective for r in after)
    print(f"one process, {library} {mode}: sabotaged member objective {first['objective']:.4f} at the swap, best after {best_after:.4f}")
    assert best_after > 5 * max(first["objective"], 0.01)
