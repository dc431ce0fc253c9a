"""PBT members trained by rsl_rl's ``OnPolicyRunner`` (rsl-rl-lib 5.x).

Only what is specific to rsl_rl lives here: the runner as the core's learner, with each live
hyperparameter of its PPO (:mod:`.learner`), what its full training state is and how a donor's state is checked and copied
into a running learner (:mod:`.state`), and the embedded tasks as an rsl_rl ``VecEnv``
(:mod:`.env`). Ranking, mutation and the workspace are the library-free core's.
"""
