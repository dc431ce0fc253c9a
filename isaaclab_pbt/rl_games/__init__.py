"""PBT members trained by rl_games (the library Isaac Lab's own PBT supports).

Only what is specific to rl_games lives here: where the tick hooks in (an ``AlgoObserver``,
:mod:`.observer`), how each live hyperparameter is kept by its agent (:mod:`.hparams`), its full
training state (:mod:`.checkpoint`) and its train and play commands (:mod:`.train`,
:mod:`.play`). Ranking, mutation and the workspace are the core's.
"""
