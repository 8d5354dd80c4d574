"""Judge validity on the pool's own answers: pairs whose better side a gold answer decides, and control pairs.

The probes of ``sparta.backends.hf.probes`` are synthetic (garbage, a wrong sum); a judge that sees through them may
still prefer what is *typical* over what is *right*. Here the answers are the pool's own samples to gold-scored
items, so a judge's accuracy and its biases are measured on the text it meets in combat:

pairs        ``decided`` pairs (one right, one wrong answer to one item, same member and temperature where
             possible) and ``temperature`` / ``length`` control pairs (equal correctness, a different temperature
             or a different length); every pair names the side whose preference it counts
preferences  how often a judge prefers that side (accuracy for decided pairs, a bias rate for the controls), per
             judgment and as the panel's mean score, with bootstrap intervals over pairs
variants     a pool configuration with each member sampling at several temperatures (clones that only answer)

Pure Python (no torch); ``sparta.backends.hf.gold_check`` samples and judges through the pool.
"""

from sparta.judge_validity.pairs import KINDS, GoldPair, Sample, build_pairs
from sparta.judge_validity.preferences import PairVerdict, preference, summarise_kind
from sparta.judge_validity.variants import SamplingVariant, sampling_variants

__all__ = [
    "KINDS",
    "GoldPair",
    "PairVerdict",
    "Sample",
    "SamplingVariant",
    "build_pairs",
    "preference",
    "sampling_variants",
    "summarise_kind",
]
