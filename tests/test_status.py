import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from isaaclab_pbt.core.workspace import Record, Workspace
from isaaclab_pbt.results.status import MIN_SILENT_S, population_rows

from .conftest import child_env

LR = "agent.params.config.learning_rate"


def _status(*args):
    return subprocess.run([sys.executable, "-m", "isaaclab_pbt", "status", *args], capture_output=True, text=True,
                          env=child_env(), timeout=120)


def _publish(ws, idx, iteration, objective, t):
    """A record as a member publishes it: weights, record file and history line."""
    rec = Record(idx, iteration, iteration * 4096, objective, {"agent.params.config.gamma": 0.99}, time=t)
    ws.publish(rec, lambda f: f.write(b"w"))
    ws.append_history(rec)
    return rec


def _workspace(tmp_path, now):
    """Member 0 publishes every 10 s and just did, 1 went quiet 15 minutes ago, 2 has no objective, 3 nothing yet."""
    ws = Workspace(str(tmp_path / "ws"))
    for it in range(1, 4):
        _publish(ws, 0, it, 0.8, now - 10 * (3 - it) - 1)
        _publish(ws, 1, it, 0.2, now - 900 - 10 * (3 - it))
        _publish(ws, 2, it, None, now - 10 * (3 - it) - 1)
    ws.append_lineage(1, {"event": "replaced", "donor": 0, "donor_iteration": 2, "frame": 8192, "iteration": 2,
                          "time": now - 905, "changed": {LR: [1e-8, 3e-4]}, "hyperparameters": {LR: 3e-4}})
    os.makedirs(ws.member_dir(3))  # started, nothing published yet
    return ws


def test_rows_describe_each_member(tmp_path):
    import time

    now = time.time()
    ws = _workspace(tmp_path, now)
    rows = {r["member"]: r for r in population_rows(ws.root, now=now)}
    assert rows[0]["objective"] == 0.8 and rows[0]["state"] == "alive" and rows[0]["last_replacement"] is None
    assert rows[0]["stale_after_s"] == MIN_SILENT_S  # 3 x a 10 s gap, but never under a minute
    assert rows[1]["state"] == "stale" and rows[1]["replacements"] == 1
    assert rows[1]["last_replacement"] == {"event": "replaced", "time": now - 905, "frame": 8192, "iteration": 2, "donor": 0,
                                           "donor_iteration": 2, "changed": {LR: {"old": 1e-8, "new": 3e-4}}}
    assert rows[2]["objective"] is None and rows[2]["frame"] == 12288 and rows[2]["state"] == "alive"
    assert rows[3]["state"] == "no record"
    assert population_rows(ws.root, stale_after_s=3600, now=now)[1]["state"] == "alive"  # an explicit threshold wins


def test_the_stale_threshold_follows_the_members_own_spacing(tmp_path):
    """A member that publishes every 20 minutes is alive 30 minutes after its last record; one that publishes every 10 s is not."""
    ws = Workspace(str(tmp_path / "ws"))
    now = 1_000_000.0
    for it in range(1, 6):
        _publish(ws, 0, it, 0.5, now - 1800 - 1200 * (5 - it))  # slow task: a record every 20 minutes
        _publish(ws, 1, it, 0.5, now - 1800 - 10 * (5 - it))  # fast task: every 10 s
    _publish(ws, 2, 1, 0.5, now - 2000)  # one record: judged by the population's gaps (median (10 + 1200) / 2)
    rows = {r["member"]: r for r in population_rows(ws.root, now=now)}
    assert rows[0]["stale_after_s"] == 3600 and rows[0]["state"] == "alive"
    assert rows[1]["stale_after_s"] == MIN_SILENT_S and rows[1]["state"] == "stale"
    assert rows[2]["stale_after_s"] == 3 * 605 and rows[2]["state"] == "stale"


def test_a_member_that_logged_its_end_is_finished_until_it_publishes_again(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    now = 1_000_000.0
    for it in range(1, 4):
        last = _publish(ws, 0, it, 0.9, now - 7200 - 10 * (3 - it))
    ws.append_lineage(0, {"event": "finished", "time": last.time + 0.5, "frame": last.frame, "iteration": last.iteration})
    [row] = population_rows(ws.root, now=now)
    assert row["state"] == "finished" and row["iteration"] == 3  # two hours later: finished, not stale
    _publish(ws, 0, 4, 0.9, now - 1)  # the same run launched again resumes the member: it trains again
    assert population_rows(ws.root, now=now)[0]["state"] == "alive"


@pytest.mark.adversarial("hostile workspace cases survived")
@pytest.mark.parametrize("entry", [
    {"event": "finished", "time": "yesterday"},
    {"event": "finished", "time": None},
    {"event": "finished", "time": [1e18]},
    {"event": "finished"},
], ids=["time-string", "time-null", "time-list", "no-time"])
def test_a_malformed_end_entry_does_not_make_a_member_finished(tmp_path, entry):
    ws = Workspace(str(tmp_path / "ws"))
    _publish(ws, 0, 1, 0.9, 1000.0)
    ws.append_lineage(0, entry)
    [row] = population_rows(ws.root, now=1010.0)
    assert row["state"] == "alive"


def test_cli_table_and_json(tmp_path):
    import time

    ws = _workspace(tmp_path, time.time())
    table = _status(ws.root)
    assert table.returncode == 0
    for text in ("000", "0.8000", "12,288", "from 000 @ 8,192", "stale", "no record"):
        assert text in table.stdout, text
    data = json.loads(_status(ws.root, "--json").stdout)
    assert [m["member"] for m in data["members"]] == [0, 1, 2, 3]
    assert data["members"][1]["last_replacement"]["changed"] == {LR: {"old": 1e-8, "new": 3e-4}}


def test_status_before_the_first_record_says_it_is_waiting(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    os.makedirs(ws.member_dir(0))
    result = _status(ws.root)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("status: waiting for the first records")


@pytest.mark.adversarial("hostile workspace cases survived")
def test_cli_survives_a_hostile_workspace(tmp_path):
    import time

    ws = _workspace(tmp_path, time.time())
    with open(ws.record_path(0, 4), "w") as f:
        f.write("!!python/object/apply:os.system ['echo pwned']\n")
    with open(ws.lineage_path(0), "w") as f:
        f.write('{"event": "replaced", "donor": "x", "frame": [1]}\n[1, 2]\n\x00\xff garbage\n'
                '{"event": "replaced", "donor": 1, "donor_iteration": 1, "frame": 1, "time": NaN}\n'
                '{"event": "mutated", "frame": 5, "time": 1.0, "changed": {"lr": [[[1]]], "gamma": [0.9, "x"]}}\n')
    with open(ws.history_path(1), "a") as f:
        f.write(json.dumps({**asdict(Record(1, 9, 1, 0.1, {})), "time": "soon"}) + "\n")
    os.makedirs(ws.record_path(1, 9))
    os.symlink("/etc", ws.member_dir(5))
    result = _status(ws.root, "--json")
    assert result.returncode == 0, result.stderr
    rows = {m["member"]: m for m in json.loads(result.stdout)["members"]}
    assert rows[0]["objective"] == 0.8 and rows[0]["replacements"] == 0
    assert rows[0]["last_replacement"]["event"] == "mutated" and rows[0]["last_replacement"]["changed"] == {}
    assert rows[5]["state"] == "no record"
    assert _status(ws.root).returncode == 0
    missing = _status(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    bad = _status(ws.root, "--stale-after", "-5")
    assert bad.returncode == 2 and "--stale-after: must be a positive number of seconds" in bad.stderr
