"""The SPARTA algorithm as pure, deterministic Python: no torch, no transformers.

matchmaking  who fights whom
panels       who judges a match: the other members, all of them, or one external judge
aggregation  many judges' scores -> one score per response
reputation   the Elo-like update and its state
rounds       one round's ratings and preference pairs from the judgments
bradley_terry a maximum-likelihood leaderboard beside the reputation
"""

from sparta.seeding import derive_rng, derive_seed
from sparta.tournament.aggregation import AGGREGATORS, aggregate
from sparta.tournament.matchmaking import make_matches
from sparta.tournament.reputation import ReputationState, kappa, update_pair
from sparta.tournament.rounds import MatchOutcome, judges_for, preference_pairs, rate_matches, score_table

__all__ = [
    "AGGREGATORS",
    "MatchOutcome",
    "ReputationState",
    "aggregate",
    "derive_rng",
    "derive_seed",
    "judges_for",
    "kappa",
    "make_matches",
    "preference_pairs",
    "rate_matches",
    "score_table",
    "update_pair",
]
