"""Planning a population launch (pure): one command line and environment per member.

The user gives the train arguments once; each member gets its own ``agent.pbt.policy_idx``, a seed
(``base + idx``), a wandb name (``idx<n>``), a fixed run folder name (so a crashed member resumes
into the same folder) and, on GPU machines, its ``CUDA_VISIBLE_DEVICES``. The shared directory and
workspace are passed explicitly to every member so that the launcher and the members agree on
where the workspace is, whatever the agent YAML says.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from ..core.agent_config import get_flag, get_override, set_flag, set_override
from ..core.config import PbtCfg
from ..core.workspace import Workspace

_OWNED = ("agent.pbt.policy_idx", "agent.pbt.num_policies", "agent.pbt.enabled")


class LaunchError(ValueError):
    """Input that cannot launch; the message is one line naming the option."""


@dataclass
class WorkerSpec:
    """How to start one member."""

    idx: int
    prefix: list[str]
    """The Python runner and the train script, e.g. ``["./isaaclab.sh", "-p", "scripts/train.py"]``."""
    args: list[str]
    """The train script's arguments."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables set on top of the launcher's environment."""
    run_name: str = ""
    log_path: str = ""

    @property
    def argv(self) -> list[str]:
        return [*self.prefix, *self.args]

    def shell(self) -> str:
        """The command as one shell line, environment first."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv)


def workspace_of(train_args: Sequence[str]) -> tuple[str, str]:
    """``(directory, workspace)`` from the overrides, else the PBT defaults; directory made absolute."""
    defaults = PbtCfg()
    directory = get_override(train_args, "agent.pbt.directory") or defaults.directory
    workspace = get_override(train_args, "agent.pbt.workspace") or defaults.workspace
    return os.path.abspath(directory), workspace


def parse_gpus(text: Optional[str]) -> list[str]:
    """``"0,1,3"`` to ``["0", "1", "3"]``; duplicates and blanks are errors."""
    if not text:
        return []
    gpus = [g.strip() for g in text.split(",")]
    if any(not g.isdigit() for g in gpus):
        raise LaunchError(f"--gpus: expected comma-separated GPU indices such as 0,1,2, got '{text}'")
    dup = sorted({g for g in gpus if gpus.count(g) > 1})
    if dup:
        raise LaunchError(f"--gpus: GPU {', '.join(dup)} listed twice in '{text}'")
    return gpus


def check_inputs(num_policies: int, train_args: Sequence[str], gpus: Sequence[str], per_gpu: Optional[int]) -> None:
    """Refuse input that cannot make a sane population, before anything starts."""
    if num_policies < 1:
        raise LaunchError(f"--num_policies: must be at least 1, got {num_policies}")
    for key in _OWNED:
        if get_override(train_args, key) is not None:
            raise LaunchError(f"train arguments: do not pass {key}; the launcher sets it for every member")
    if per_gpu is not None:
        if per_gpu < 1:
            raise LaunchError(f"--per_gpu: must be at least 1, got {per_gpu}")
        if not gpus:
            raise LaunchError("--per_gpu: needs --gpus")
        if per_gpu * len(gpus) < num_policies:
            raise LaunchError(f"--per_gpu: {per_gpu} x {len(gpus)} GPUs hold {per_gpu * len(gpus)} members, fewer than --num_policies {num_policies}")


def check_workspace_writable(train_args: Sequence[str]) -> str:
    """Create the workspace folder and a file in it, or fail naming the folder; returns its path."""
    directory, workspace = workspace_of(train_args)
    root = os.path.join(directory, workspace)
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        raise LaunchError(f"agent.pbt.directory: workspace folder '{root}' is not writable ({e.strerror or e})") from None
    return root


#: How each RL library's train script is told a member's run folder name: a config key or a flag.
#: rl_games takes the whole folder name (``<tag>_pbt<idx>``); rsl_rl and skrl take the tag and add
#: the date before it and ``_pbt<idx>`` after it themselves, as their Isaac Lab train scripts do.
RUN_NAME = {"rl_games": "+agent.params.config.full_experiment_name", "rsl_rl": "--run_name",
            "skrl": "++agent.agent.experiment.experiment_name"}


def plan_workers(
    num_policies: int,
    train_args: Sequence[str],
    script: str,
    python: Sequence[str],
    gpus: Sequence[str] = (),
    per_gpu: Optional[int] = None,
    tag: str = "pbt",
    members: Optional[Sequence[int]] = None,
    log_dir: Optional[str] = None,
    on_gpu: bool = False,
    library: str = "rl_games",
) -> list[WorkerSpec]:
    """One :class:`WorkerSpec` per member (or per index in ``members``).

    A member given a GPU (``gpus``, or ``on_gpu`` for Ray and Slurm, which set
    ``CUDA_VISIBLE_DEVICES`` themselves) sees it as ``cuda:0`` and trains there: ``--device=cuda:0``
    is added unless the user chose a device. ``library`` says how the run folder is named (:data:`RUN_NAME`).
    """
    check_inputs(num_policies, train_args, gpus, per_gpu)
    device = get_flag(train_args, "--device")
    if gpus and device not in (None, "cuda", "cuda:0"):
        raise LaunchError(f"--device: with --gpus every member sees only its own GPU, as cuda:0; drop --device={device}")
    directory, workspace = workspace_of(train_args)
    base_seed = int(get_flag(train_args, "--seed") or 0)
    track = "--track" in train_args
    wandb_base = get_flag(train_args, "--wandb-name")
    log_dir = log_dir or os.path.join(directory, "logs", "launch", tag)
    specs = []
    for idx in range(num_policies) if members is None else members:
        if not 0 <= idx < num_policies:
            raise LaunchError(f"--members: {idx} is outside [0, {num_policies})")
        args = list(train_args)
        if "--headless" not in args:
            args.append("--headless")
        if (gpus or on_gpu) and device is None:
            args = set_flag(args, "--device", "cuda:0")
        args = set_flag(args, "--seed", str(base_seed + idx))
        if track:
            args = set_flag(args, "--wandb-name", f"{wandb_base}_idx{idx}" if wandb_base else f"idx{idx}")
        run_name = f"{tag}_pbt{idx:03d}"
        for key, value in (("agent.pbt.enabled", True), ("agent.pbt.num_policies", num_policies),
                           ("agent.pbt.policy_idx", idx), ("agent.pbt.directory", directory),
                           ("agent.pbt.workspace", workspace)):
            args = set_override(args, key, value)
        name_key, name = RUN_NAME[library], run_name if library == "rl_games" else tag
        args = set_flag(args, name_key, name) if name_key.startswith("--") else set_override(args, name_key, name)
        env = {}
        if gpus:
            slot = idx // per_gpu if per_gpu else idx % len(gpus)
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
        prefix = [*python, *(script.split() if script.startswith("-m ") else [script])]
        specs.append(WorkerSpec(idx, prefix, args, env, run_name, os.path.join(log_dir, f"member{idx:03d}.log")))
    return specs


def resume_argv(spec: WorkerSpec, workspace: Workspace) -> list[str]:
    """The member's command continued from its newest checkpoint that loads safely, and that record's hyperparameters.

    A truncated or corrupt newest checkpoint (a kill or a full disk while it was written) falls
    back to the iteration before it; without any, the member starts over with its original command.
    """
    for iteration in reversed(workspace.iterations(spec.idx)):
        record = workspace.read_record(spec.idx, iteration)
        path = workspace.checked_weights_path(spec.idx, iteration) if record else None
        if path is not None and _loads(path):
            break
    else:
        return spec.argv
    args = set_flag(spec.args, "--checkpoint", path)
    for key, value in record.hyperparameters.items():
        args = set_override(args, key, value)
    return [*spec.prefix, *args]


def _loads(path: str) -> bool:
    """True when the checkpoint at ``path`` loads with ``weights_only=True``."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, corrupt or hostile: any of them means "not this one"
        return False
    return True


def env_for(spec: WorkerSpec, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The launcher's environment with the member's variables and one thread per member by default."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(spec.env)
    return env
