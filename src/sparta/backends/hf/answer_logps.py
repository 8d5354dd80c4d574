"""The likelihood judge's log-probabilities as DPO's reference: a number the round has already computed.

SPARTA's reference policy is the member at the start of the round, and the round's judges are its members at the
start of the round. A member judging with the ``likelihood`` judge computes log P(answer | its own chat prompt for
the instruction) through its adapter: for a pair it then trains on, exactly what its reference pass would compute
again, over the same tokens with the same weights. With ``tournament.judges: others`` a member judges the matches
it does not fight, about half of the pairs it trains on in a four-member pool.

The number travels in the judgment itself (``raw``: ``answer_logp``, and ``answer_digest``, a digest of the prompt
and answer ids it was computed over), so it is written to ``judgments.jsonl`` with the judgment: a resumed round, or
a member trained in another process, takes the very same numbers, and training does not depend on where or when the
round was judged. The trainer takes a number only for a pair whose own ids have that digest.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

from sparta.records import Judgment
from sparta.rundir import JUDGMENTS, read_jsonl

LOGP_FIELD = "answer_logp"
DIGEST_FIELD = "answer_digest"


def answer_digest(prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> str:
    """Names the scored sequence: the answer's ids, every one scored, after the whole prompt."""
    data = array("q", [*prompt_ids, -1, *answer_ids]).tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def judged_references(judgments: Iterable[Judgment]) -> dict[str, dict[str, float]]:
    """Per judge: the answers' log-probabilities, by the digest of their ids, in its judgments that carry one."""
    found: dict[str, dict[str, float]] = {}
    for judgment in judgments:
        if not judgment.raw or LOGP_FIELD not in judgment.raw:
            continue
        raw = json.loads(judgment.raw)
        found.setdefault(judgment.judge, {})[raw[DIGEST_FIELD]] = float(raw[LOGP_FIELD])
    return found


def round_references(round_dir: Path) -> dict[str, dict[str, float]]:
    """:func:`judged_references` of the round's judgments file, read once (none where it is missing)."""
    path = Path(round_dir) / JUDGMENTS
    if not path.exists():
        return {}
    return judged_references(Judgment.from_dict(row) for row in read_jsonl(path))
