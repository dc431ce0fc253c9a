"""PBT members trained by skrl's PPO (``skrl.agents.torch.ppo.PPO``, skrl 2.x) through skrl's own ``Runner``.

Only what is specific to skrl lives here: the agent as the core's learner, with where the tick
hooks into skrl's unchanged trainer loop and which of PPO's settings it reads at every update and
how to change them in a running agent (:mod:`.learner`), what its full training state is and how
a donor's state is checked and copied into a running agent (:mod:`.state`), the embedded tasks
as an skrl env wrapper (:mod:`.env`) and the train command (:mod:`.train`). Ranking, mutation and the workspace are
the library-free core's.
"""
