"""Train an skrl PPO agent, alone or as one member of a PBT population (the embedded tasks).

Example::

    # member 1 of a population of 4 sharing ./pbt
    python scripts/skrl/train.py --task=PointReach-v0 --seed=1 agent.pbt.enabled=True agent.pbt.num_policies=4 \
        agent.pbt.policy_idx=1 agent.pbt.directory=./pbt agent.pbt.workspace=ws
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from isaaclab_pbt.skrl.train import main  # noqa: E402

if __name__ == "__main__":
    main()
