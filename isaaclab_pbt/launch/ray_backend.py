"""Members as Ray tasks on a Ray cluster, with Ray's retries plus the resume from the workspace.

Each member is one Ray task holding its CPUs and GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``); the task
runs the member's training process and fails if it exits with an error, and Ray retries the task
(also when the node or the Ray worker dies). Every attempt starts from the member's newest
workspace checkpoint, so a retry loses at most one PBT interval. The workspace must be on storage
that every node mounts at the same path.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Callable, Optional, Sequence

from ..core.workspace import Workspace
from .plan import WorkerSpec, env_for, resume_argv
from .supervisor import _die_with_parent


def _run_member(spec: WorkerSpec, workspace_root: str) -> int:
    """Body of the Ray task: run one attempt of a member to its end."""
    argv = resume_argv(spec, Workspace(workspace_root))
    os.makedirs(os.path.dirname(spec.log_path), exist_ok=True)
    with open(spec.log_path, "ab") as log:
        log.write(f"\n[ray] start on {os.uname().nodename}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env_for(spec),
                                start_new_session=True, preexec_fn=_die_with_parent)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"member {spec.idx:03d} exited with code {code}")
    return spec.idx


def run_ray(
    specs: Sequence[WorkerSpec],
    workspace_root: str,
    address: Optional[str],
    cpus_per_member: float,
    gpus_per_member: float,
    max_restarts: int,
    refresh_s: float = 2.0,
    show: Optional[Callable[[dict[int, str]], None]] = None,
) -> dict[int, str]:
    """Run every member to its end on the cluster; returns each member's final state."""
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    task = ray.remote(_run_member).options(num_cpus=cpus_per_member, num_gpus=gpus_per_member,
                                           max_retries=max_restarts, retry_exceptions=True)
    refs = {task.remote(spec, workspace_root): spec.idx for spec in specs}
    states = {spec.idx: "running" for spec in specs}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=refresh_s)
            for ref in ready:
                try:
                    ray.get(ref)
                    states[refs[ref]] = "finished"
                except Exception:  # retries exhausted
                    states[refs[ref]] = "failed"
            if show is not None:
                show(states)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
            states[refs[ref]] = "stopped"
        time.sleep(1.0)
    finally:
        ray.shutdown()
    return states
