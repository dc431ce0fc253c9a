"""Population Based Training for Isaac Lab policies trained with rl_games or rsl_rl.

The package is laid out by role: :mod:`.core` is PBT itself and imports no RL library;
:mod:`.rl_games` and :mod:`.rsl_rl` hold what is specific to each library (where the tick hooks
in, live hyperparameters, training state, the train command); :mod:`.results` reads a workspace
(status, lineage, plot, export, replay); :mod:`.launch` starts a population; :mod:`.tasks` are
the embedded CPU tasks and :mod:`.isaaclab` the Isaac Lab registration.
"""

from .core.config import PbtCfg, PbtConfigError

__all__ = ["PbtCfg", "PbtConfigError"]
__version__ = "0.3.0"
