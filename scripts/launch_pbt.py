"""Launch a PBT population: N headless members on local GPUs/CPU, a Ray cluster, or Slurm.

    python scripts/launch_pbt.py --num_policies 4 -- --max_iterations=200 agent.pbt.directory=pbt_runs

See ``python scripts/launch_pbt.py --help`` for every option.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from isaaclab_pbt.launch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
