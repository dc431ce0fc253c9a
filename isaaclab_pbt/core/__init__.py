"""The PBT core: what a population member does, whatever RL library trains it.

Data flows one way through it: :mod:`.config` (the validated ``agent.pbt`` block) ->
:mod:`.objective` (the score of an interval) -> :mod:`.workspace` (records and checkpoints shared
through files) -> :mod:`.selection` (who leads, who lags) -> :mod:`.mutation` (new values) ->
:mod:`.decision` (what one member does at a tick) -> :mod:`.member` (applies it through a
backend's :class:`~.member.Learner`). :mod:`.agent_config` owns the agent config (loaded,
overridden, read and written by one dotted name per setting, and written back on a restarted
member's command line), :mod:`.values` the rules each setting's value must keep; :mod:`.errors`
the one-line errors. Nothing here imports
torch or an RL library (a test proves it).
"""
