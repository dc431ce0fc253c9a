"""Isaac Lab integration: task registrations, environment creation on Isaac Lab 2.3 and 3.0, curriculum state.

Nothing here is imported by the PBT core; these modules import Isaac Lab lazily and only when a
task id that is not embedded is trained.
"""
