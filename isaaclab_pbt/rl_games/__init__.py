"""PBT members trained by rl_games (the library Isaac Lab's own PBT supports).

Only what is specific to rl_games lives here: where the tick hooks in (an ``AlgoObserver``,
:mod:`.observer`), the agent as the core's learner, with each live hyperparameter kept where its loop reads it
(:mod:`.learner`), its full
training state (:mod:`.checkpoint`) and its train and play commands (:mod:`.train`,
:mod:`.play`). Ranking, mutation and the workspace are the core's.
"""
