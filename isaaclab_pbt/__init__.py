"""Population Based Training for Isaac Lab policies trained with rl_games, rsl_rl or skrl.

The package is laid out by role: :mod:`.core` is PBT itself and imports no RL library;
:mod:`.rl_games`, :mod:`.rsl_rl` and :mod:`.skrl` hold what is specific to each library (where
the tick hooks in, live hyperparameters, training state, the train command); :mod:`.results`
reads a workspace (status, lineage, plot, export); :mod:`.launch` starts a population;
:mod:`.cli` is ``python -m isaaclab_pbt``; :mod:`.tasks` are the embedded CPU tasks and
:mod:`.isaaclab` the Isaac Lab registration.
"""

from .core.config import PbtCfg, PbtConfigError

__all__ = ["PbtCfg", "PbtConfigError"]
__version__ = "0.7.0"
