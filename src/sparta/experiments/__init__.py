"""Studies built from runs: simulated ablations, baselines, comparisons."""
