"""The round loop over a run directory: stage by stage, atomic, resumable."""
