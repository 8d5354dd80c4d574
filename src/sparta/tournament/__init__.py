"""The SPARTA algorithm as pure, deterministic Python: no torch, no transformers.

matchmaking  who fights whom
aggregation  many judges' scores -> one score per response, by a registered rule
peer_rank    a round rule: judge reliability from agreement with the others, iterated
dawid_skene  a round rule: judge accuracy by EM over pairwise verdicts
verdicts     a round's judgments as one matrix, for the round rules
panels       who judges a match: the other members, all of them, or one external judge
reputation   the Elo-like update and its state
rounds       one round's ratings and preference pairs from the judgments
bradley_terry a maximum-likelihood leaderboard beside the reputation
"""

from sparta.seeding import derive_rng, derive_seed
from sparta.tournament.aggregation import AGGREGATORS, build_aggregate
from sparta.tournament.matchmaking import make_matches
from sparta.tournament.reputation import ReputationState, kappa, update_pair
from sparta.tournament.rounds import (
    MatchOutcome,
    PairSelection,
    judges_for,
    preference_pairs,
    rate_matches,
    round_scores,
    score_table,
    select_pairs,
)

__all__ = [
    "AGGREGATORS",
    "MatchOutcome",
    "PairSelection",
    "ReputationState",
    "build_aggregate",
    "derive_rng",
    "derive_seed",
    "judges_for",
    "kappa",
    "make_matches",
    "preference_pairs",
    "rate_matches",
    "round_scores",
    "score_table",
    "select_pairs",
    "update_pair",
]
