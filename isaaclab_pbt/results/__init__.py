"""Reading a population's workspace: status table, lineage, plots, export of the best member, replay of a schedule.

These tools only read the workspace (and write their own outputs), so they run while the
population trains, on any machine that sees the folder; ``python -m isaaclab_pbt`` is their
command line (:mod:`.cli`).
"""
