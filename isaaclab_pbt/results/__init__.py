"""Reading a population's workspace: status table, lineage, plots, export of the best member and its schedule.

These tools only read the workspace (and write their own outputs), so they run while the
population trains, on any machine that sees the folder, whatever RL library trained it;
``python -m isaaclab_pbt`` is their command line (:mod:`isaaclab_pbt.cli`). Replaying an exported
schedule is training, so it lives with rl_games (:mod:`isaaclab_pbt.rl_games.replay`).
"""
