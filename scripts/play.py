"""Evaluate a trained policy; by default the best member of a PBT workspace.

Examples::

    # the best member of the population trained in ./pbt/ws, 100 episodes, as a table
    python scripts/play.py --task=PuckPush-v0 agent.pbt.directory=./pbt agent.pbt.workspace=ws

    # a given checkpoint
    python scripts/play.py --task=PuckPush-v0 --checkpoint=logs/rl_games/puck_push/<run>/nn/puck_push.pth
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from isaaclab_pbt.rl_games.play import main  # noqa: E402

if __name__ == "__main__":
    main()
