"""PBT members trained by skrl's PPO (``skrl.agents.torch.ppo.PPO``, skrl 2.x) through skrl's own ``Runner``.

Only what is specific to skrl lives here: which of PPO's settings it reads at every update and
how to change them in a running agent (:mod:`.hparams`), what its full training state is and how
a donor's state is checked and copied into a running agent (:mod:`.state`), the embedded tasks
as an skrl env wrapper (:mod:`.env`), where the tick hooks into skrl's unchanged trainer loop
(:mod:`.learner`) and the train command (:mod:`.train`). Ranking, mutation and the workspace are
the library-free core's.
"""
