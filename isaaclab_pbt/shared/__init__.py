"""A whole population in one process (``agent.pbt.mode=shared``): one vectorised env, a block per learner.

:mod:`.lockstep` splits one env into contiguous blocks and steps them together once every
learner has given its block's actions; each RL library's driver (``rl_games/shared.py``) runs one
learner per block, each in its own thread with the library's own training loop
(:mod:`.population`), and their PBT members trade records and states in memory
(:class:`~isaaclab_pbt.core.exchange.Exchange`). ``rsl_rl/shared.py`` does the same for rsl_rl.
"""
