"""How long the launcher takes to get a population training, and to bring a killed member back.

Starts ``scripts/launch_pbt.py`` on the embedded task, watches the member logs for their first
trained epoch, SIGKILLs one member and times its return to training (launcher backoff included,
and also reported without it).

    python bench/bench_launch.py [--num_policies 3] [--backoff 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from isaaclab_pbt.core.workspace import Workspace  # noqa: E402

EPOCH_LINE = "fps step:"


def _epochs_after_last_start(path: str) -> int:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except FileNotFoundError:
        return 0
    return text.rsplit("[launcher] start:", 1)[-1].count(EPOCH_LINE)


def _wait(predicate, timeout=300.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_policies", type=int, default=3)
    parser.add_argument("--backoff", type=float, default=2.0, help="launcher's first crash-restart delay (s)")
    parser.add_argument("--device", default=None, help="members' device, e.g. cuda:0 (default: the agent config's, the CPU)")
    parser.add_argument("--num_envs", type=int, default=None, help="envs per member (default: the agent config's)")
    args = parser.parse_args()
    member_flags = [*([f"--device={args.device}"] if args.device else []), *([f"--num_envs={args.num_envs}"] if args.num_envs else [])]
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "logs", "launch", "b")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        t0 = time.monotonic()
        launcher = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "launch_pbt.py"), "--num_policies", str(args.num_policies),
             "--tag", "b", "--backoff", str(args.backoff), "--", "--max_iterations=100000", *member_flags,
             f"agent.pbt.directory={tmp}", "agent.pbt.interval_steps=4096"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        logs_of = [os.path.join(logs, f"member{i:03d}.log") for i in range(args.num_policies)]
        t_all = _wait(lambda: all(_epochs_after_last_start(p) > 0 for p in logs_of))
        ws = Workspace(os.path.join(tmp, "pbt_workspace"))
        _wait(lambda: ws.latest(0) is not None)
        t_kill = time.monotonic()
        os.kill(ws.latest(0).pid, signal.SIGKILL)
        _wait(lambda: open(logs_of[0]).read().count("[launcher] start:") == 2)
        t_back = _wait(lambda: _epochs_after_last_start(logs_of[0]) > 0)
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
    print(f"embedded task, {args.num_policies} members, {os.cpu_count()} CPUs, device {args.device or 'from the config'}")
    print(f"launcher start -> every member trained its first epoch : {t_all - t0:6.1f} s")
    print(f"member SIGKILLed -> trains again from its checkpoint    : {t_back - t_kill:6.1f} s "
          f"(of which {args.backoff:.1f} s launcher backoff: {t_back - t_kill - args.backoff:.1f} s without it)")


if __name__ == "__main__":
    main()
