"""A Slurm batch script for clusters without Ray: one array task per member.

Each array task runs this launcher for its single member (``--members $SLURM_ARRAY_TASK_ID``), so a
crashed member is restarted from its newest checkpoint inside its allocation exactly as on one
machine; Slurm's gres binding decides ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import shlex
from typing import Sequence


def batch_script(
    num_policies: int,
    launcher: Sequence[str],
    train_args: Sequence[str],
    tag: str,
    log_dir: str,
    gpus_per_member: int,
    cpus_per_member: int,
    max_restarts: int,
    time_limit: str = "72:00:00",
    partition: str = "",
) -> str:
    """The text of an ``sbatch`` script that trains the whole population."""
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name=pbt-{tag}",
        f"#SBATCH --array=0-{num_policies - 1}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={cpus_per_member}",
        f"#SBATCH --time={time_limit}",
        f"#SBATCH --output={log_dir}/slurm-%A_%a.out",
        "#SBATCH --requeue",
    ]
    if gpus_per_member:
        header.append(f"#SBATCH --gres=gpu:{gpus_per_member}")
    if partition:
        header.append(f"#SBATCH --partition={partition}")
    command = [*launcher, "--num_policies", str(num_policies), "--members", "$SLURM_ARRAY_TASK_ID",
               "--tag", tag, "--max_restarts", str(max_restarts), "--", *train_args]
    quoted = " ".join(c if c == "$SLURM_ARRAY_TASK_ID" else shlex.quote(c) for c in command)
    body = [
        "",
        "# Submit with: sbatch <this file>. Every array task must see the same agent.pbt.directory",
        "# (a shared filesystem such as NFS or Lustre); members coordinate only through it.",
        f"mkdir -p {shlex.quote(log_dir)}",
        f"srun {quoted}",
        "",
    ]
    return "\n".join(header + body)
