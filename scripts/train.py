"""Train an rl_games agent, alone or as one member of a PBT population.

Examples::

    # a single learner on the embedded CPU task
    python scripts/train.py --headless --max_iterations=100

    # member 2 of a population of 4 sharing ./pbt
    python scripts/train.py --headless --seed=2 agent.pbt.enabled=True agent.pbt.num_policies=4 \
        agent.pbt.policy_idx=2 agent.pbt.directory=./pbt agent.pbt.workspace=ws
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from isaaclab_pbt.rl_games.train import main  # noqa: E402

if __name__ == "__main__":
    main()
