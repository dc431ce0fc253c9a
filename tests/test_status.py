import json
import os
import subprocess
import sys

from isaaclab_pbt.status import population_rows
from isaaclab_pbt.workspace import Record, Workspace

from .conftest import child_env


def _status(*args):
    return subprocess.run([sys.executable, "-m", "isaaclab_pbt", "status", *args], capture_output=True, text=True,
                          env=child_env(), timeout=60)


def _workspace(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    for idx, objective, t in ((0, 0.8, None), (1, 0.2, 0.0), (2, None, None)):
        rec = Record(idx, 3, 3 * 4096, objective, {"agent.params.config.gamma": 0.99})
        if t is not None:
            rec.time = t
        ws.publish(rec, lambda f: f.write(b"w"))
    ws.append_lineage(1, {"event": "replaced", "donor": 0, "frame": 8192})
    os.makedirs(ws.member_dir(3))  # started, nothing published yet
    return ws


def test_rows_describe_each_member(tmp_path):
    ws = _workspace(tmp_path)
    rows = {r["member"]: r for r in population_rows(ws.root, stale_after_s=600)}
    assert rows[0]["objective"] == 0.8 and rows[0]["state"] == "alive" and rows[0]["last_replacement"] == "-"
    assert rows[1]["state"] == "stale" and rows[1]["replacements"] == 1 and rows[1]["last_replacement"] == "from 000 @ 8,192"
    assert rows[2]["objective"] is None and rows[2]["frame"] == 12288
    assert rows[3]["state"] == "no record"


def test_cli_table_and_json(tmp_path):
    ws = _workspace(tmp_path)
    table = _status(ws.root)
    assert table.returncode == 0
    for text in ("000", "0.8000", "12,288", "from 000 @ 8,192", "stale", "no record"):
        assert text in table.stdout, text
    data = json.loads(_status(ws.root, "--json").stdout)
    assert [m["member"] for m in data["members"]] == [0, 1, 2, 3]


def test_cli_survives_a_hostile_workspace(tmp_path):
    ws = _workspace(tmp_path)
    with open(ws.record_path(0, 4), "w") as f:
        f.write("!!python/object/apply:os.system ['echo pwned']\n")
    with open(ws.lineage_path(0), "w") as f:
        f.write('{"event": "replaced", "donor": "x", "frame": [1]}\n[1, 2]\n\x00\xff garbage\n')
    os.makedirs(ws.record_path(1, 9))
    os.symlink("/etc", ws.member_dir(5))
    result = _status(ws.root, "--json")
    assert result.returncode == 0, result.stderr
    rows = {m["member"]: m for m in json.loads(result.stdout)["members"]}
    assert rows[0]["objective"] == 0.8 and rows[0]["last_replacement"] == "from ? @ ?"
    assert rows[5]["state"] == "no record"
    assert _status(ws.root).returncode == 0
    missing = _status(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
