"""Experiments on the simulated tribe: the paper's ablations and studies, scored against the latent truth.

simulation         one simulated run, scored; the paper's ablations
metrics            label accuracy, Spearman
aggregation_study  every aggregation rule against unreliable judges of every kind and share
"""

from sparta.registry import Registry

STUDIES: Registry = Registry("study")
"""``sparta simulate --study NAME`` -> the function that runs it."""

STUDIES.register("aggregation", "sparta.experiments.aggregation_study:study_command")
