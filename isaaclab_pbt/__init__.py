"""Population Based Training for rl_games policies in Isaac Lab.

One training process per population member; members coordinate only through files in a shared
workspace. The pure modules (:mod:`.config`, :mod:`.selection`, :mod:`.mutation`,
:mod:`.workspace`, :mod:`.decision`) import neither torch nor rl_games.
"""

from .config import PbtCfg, PbtConfigError

__all__ = ["PbtCfg", "PbtConfigError"]
__version__ = "0.2.0"
