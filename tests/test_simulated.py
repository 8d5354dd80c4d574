"""The simulated tribe: deterministic, order free, noisy judges that improve with skill, training toward winners."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from sparta.backends.base import build_tribe
from sparta.backends.simulated import FAILURE_RAW, FAILURE_REASON, STATE_FILE, SimulatedTribe
from sparta.config import ConfigError, SpartaConfig, config_from_dict
from sparta.records import Instruction, JudgeRequest, PreferencePair, Response


def make_config(n_members: int = 4, seed: int = 0, **simulation) -> SpartaConfig:
    return config_from_dict(
        {
            "run": {"seed": seed},
            "backend": {"kind": "simulated"},
            "pool": {"members": [{"name": f"m{i:02d}", "model": "simulated"} for i in range(n_members)]},
            "simulation": simulation,
        }
    )


def instructions(n: int, domains: tuple[str, ...] = ("math", "code", "gsm8k")) -> list[Instruction]:
    return [Instruction(f"ins-{i}", f"question {i}", domain=domains[i % len(domains)]) for i in range(n)]


def all_judge_requests(
    tribe: SimulatedTribe, responses: list[Response], by_id: dict[str, Instruction]
) -> list[JudgeRequest]:
    return [JudgeRequest(j, by_id[r.instruction_id], r) for r in responses for j in tribe.members if j != r.model]


def test_build_through_the_registry_gives_the_pool_members():
    tribe = build_tribe(make_config(3))
    assert isinstance(tribe, SimulatedTribe)
    assert tribe.members == ["m00", "m01", "m02"]
    assert set(tribe.skills()["m00"]) == {"math", "code", "knowledge", "reasoning", "writing"}


def test_same_seed_same_outputs_in_any_call_order():
    ins = instructions(60)
    by_id = {x.id: x for x in ins}
    requests = [(m, x) for x in ins for m in ("m00", "m01", "m02")]
    a, b = build_tribe(make_config()), build_tribe(make_config())
    resp_a = a.generate(requests, seed=1)
    shuffled = list(requests)
    random.Random(7).shuffle(shuffled)
    resp_b = {(r.model, r.instruction_id): r for r in b.generate(shuffled, seed=99)}
    assert all(r == resp_b[(r.model, r.instruction_id)] for r in resp_a)

    judge_reqs = all_judge_requests(a, resp_a, by_id)
    judged_a = a.judge(judge_reqs)
    random.Random(3).shuffle(judge_reqs)
    judged_b = {(j.judge, j.model, j.instruction_id): j for j in b.judge(judge_reqs[::-1])}
    assert all(j == judged_b[(j.judge, j.model, j.instruction_id)] for j in judged_a)

    other = build_tribe(make_config(seed=1))
    assert other.skills() != a.skills()
    assert [r.meta["quality"] for r in other.generate(requests, seed=1)] != [r.meta["quality"] for r in resp_a]


def test_response_carries_quality_and_a_configured_domain():
    tribe = build_tribe(make_config(domains=["math", "code"]))
    ins = instructions(30, domains=("math", "gsm8k", "poetry"))
    responses = tribe.generate([("m01", x) for x in ins], seed=0)
    for x, r in zip(ins, responses):
        assert r.model == "m01" and r.instruction_id == x.id and "m01" in r.text and x.id in r.text
        assert r.meta["domain"] in {"math", "code"}
        assert r.meta["domain"] == tribe.domain_of(x.domain)
        assert r.meta["quality"] == pytest.approx(tribe.latent_quality("m01", x))
    assert tribe.domain_of("math") == "math"
    assert tribe.domain_of("gsm8k") == build_tribe(make_config(seed=5, domains=["math", "code"])).domain_of("gsm8k")


def test_judge_noise_shrinks_with_the_judges_skill():
    tribe = build_tribe(make_config(6, seed=2, domains=["math"], skill_spread=1.5, judge_failure_rate=0.0))
    ins = instructions(3000, domains=("math",))
    by_id = {x.id: x for x in ins}
    responses = tribe.generate([("m00", x) for x in ins], seed=0)
    by_skill = sorted(tribe.members[1:], key=tribe.mean_skill)
    weak, strong = by_skill[0], by_skill[-1]
    assert tribe.mean_skill(strong) - tribe.mean_skill(weak) > 1.0
    errors = {}
    for judge in (weak, strong):
        scores = tribe.judge([JudgeRequest(judge, by_id[r.instruction_id], r) for r in responses])
        p = np.array([(j.score - 1.0) / 9.0 for j in scores])
        q = np.array([r.meta["quality"] for r in responses])
        errors[judge] = np.log(p / (1 - p)) - q  # the judge's error e, recovered from its score
    for judge, e in errors.items():
        assert abs(e.mean()) < 0.15 * tribe.judge_noise_sd(judge, "math") + 0.05
        assert e.std() == pytest.approx(tribe.judge_noise_sd(judge, "math"), rel=0.1)
    assert errors[strong].std() < errors[weak].std()


@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_failure_rate_roughly_as_configured(rate):
    tribe = build_tribe(make_config(5, judge_failure_rate=rate))
    ins = instructions(1000)
    by_id = {x.id: x for x in ins}
    judged = tribe.judge(all_judge_requests(tribe, tribe.generate([("m00", x) for x in ins], seed=0), by_id))
    failed = [j for j in judged if j.score is None]
    assert len(failed) / len(judged) == pytest.approx(rate, abs=0.02)
    assert all(j.failure == FAILURE_REASON and j.raw == FAILURE_RAW for j in failed)
    assert all(1.0 <= j.score <= 10.0 and j.failure is None for j in judged if j.score is not None)


def test_judge_rederives_quality_when_the_response_has_none():
    tribe = build_tribe(make_config())
    x = instructions(1)[0]
    recorded = tribe.generate([("m01", x)], seed=0)[0]
    bare = Response(x.id, "m01", "an answer written elsewhere")
    assert tribe.judge([JudgeRequest("m02", x, bare)]) == tribe.judge([JudgeRequest("m02", x, recorded)])
    with pytest.raises(KeyError, match="judge 'nobody'"):
        tribe.judge([JudgeRequest("nobody", x, recorded)])


def pairs_from(tribe: SimulatedTribe, ins: list[Instruction], flip: bool = False) -> list[PreferencePair]:
    """One pair per instruction between two members, labelled by true quality (or against it)."""
    members = tribe.members
    pairs = []
    for i, x in enumerate(ins):
        a, b = members[i % len(members)], members[(i + 1) % len(members)]
        ra, rb = tribe.generate([(a, x), (b, x)], seed=0)
        good, bad = (ra, rb) if ra.meta["quality"] >= rb.meta["quality"] else (rb, ra)
        if flip:
            good, bad = bad, good
        pairs.append(PreferencePair(x.text, good.text, bad.text, good.model, bad.model, 1.0, x.id, domain=x.domain))
    return pairs


@pytest.mark.parametrize("flip", [False, True])
def test_training_follows_the_labels(tmp_path, flip):
    tribe = build_tribe(make_config(4, seed=3))
    before = {m: tribe.mean_skill(m) for m in tribe.members}
    metrics = tribe.train(pairs_from(tribe, instructions(400), flip=flip), tmp_path, seed=0)
    after = {m: tribe.mean_skill(m) for m in tribe.members}
    assert metrics["pairs"] == 400
    assert metrics["mislabelled_share"] == (1.0 if flip else 0.0)
    if flip:
        assert metrics["mean_skill_gain"] < 0 and all(after[m] < before[m] for m in tribe.members)
    else:
        assert metrics["mean_skill_gain"] > 0 and all(after[m] > before[m] for m in tribe.members)
    assert metrics["mean_skill_gain"] == pytest.approx(np.mean([after[m] - before[m] for m in tribe.members]))


def test_train_then_load_round_restores_the_skills(tmp_path):
    config = make_config(4, seed=4)
    trained = build_tribe(config)
    pristine = trained.skills()
    trained.train(pairs_from(trained, instructions(120)), tmp_path / "round_001", seed=0)
    state = json.loads((tmp_path / "round_001" / STATE_FILE).read_text())
    assert state["skills"] == trained.skills() != pristine
    assert not list((tmp_path / "round_001").glob("*.tmp"))

    resumed = build_tribe(config)
    assert resumed.skills() == pristine
    resumed.load_round(tmp_path / "round_001")
    assert resumed.skills() == trained.skills()
    x = instructions(1)[0]
    assert resumed.latent_quality("m02", x) == trained.latent_quality("m02", x)


def test_training_with_no_pairs_keeps_the_skills(tmp_path):
    tribe = build_tribe(make_config())
    before = tribe.skills()
    assert tribe.train([], tmp_path, seed=0) == {"pairs": 0, "mean_skill_gain": 0.0, "mislabelled_share": 0.0}
    assert tribe.skills() == before and (tmp_path / STATE_FILE).is_file()


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="pool.members is empty"):
        build_tribe(make_config(0))
    with pytest.raises(ValueError, match="simulation.domains is empty"):
        build_tribe(make_config(domains=[]))
    tribe = build_tribe(make_config())
    stranger = PreferencePair("p", "c", "r", "m00", "ghost", 1.0, "ins-7", "math")
    with pytest.raises(ValueError, match="pair 0 \\(instruction 'ins-7'\\).*'ghost'"):
        tribe.train([stranger], tmp_path, seed=0)
    with pytest.raises(FileNotFoundError, match=STATE_FILE):
        tribe.load_round(tmp_path / "round_009")
    tribe.train([], tmp_path, seed=0)
    with pytest.raises(ValueError, match="field 'domains'"):
        build_tribe(make_config(domains=["math"])).load_round(tmp_path)


def test_judging_at_paper_scale_scores_every_request():
    """10 members, 1000 answers, 9 judges each: the scale of benchmarks/simulated_judging.py, which measures the
    speed; this test pins what is computed, not how fast."""
    tribe = build_tribe(make_config(10))
    ins = instructions(1000)
    by_id = {x.id: x for x in ins}
    responses = tribe.generate([(tribe.members[i % 10], x) for i, x in enumerate(ins)], seed=0)
    requests = all_judge_requests(tribe, responses, by_id)
    judged = tribe.judge(requests)
    assert len(requests) == len(judged) == 9_000
    assert [(j.judge, j.model, j.instruction_id) for j in judged] == [
        (r.judge, r.response.model, r.instruction.id) for r in requests
    ]
    failed = sum(j.score is None for j in judged)
    assert 0.01 < failed / len(judged) < 0.03  # simulation.judge_failure_rate 0.02
    assert all(1.0 <= j.score <= 10.0 for j in judged if j.score is not None)


def test_progress_counts_every_item():
    tribe = build_tribe(make_config())
    seen: list[int] = []
    responses = tribe.generate([("m00", x) for x in instructions(2500)], seed=0, progress=seen.append)
    assert sum(seen) == len(responses) == 2500


def test_importing_the_simulated_tribe_does_not_import_torch():
    code = "import sys, sparta.backends.simulated; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quality_is_skill_plus_stable_noise():
    tribe = build_tribe(make_config(3, response_noise=0.0))
    x = Instruction("ins-1", "q", domain="code")
    assert tribe.latent_quality("m00", x) == tribe.skills()["m00"]["code"]
    noisy = build_tribe(make_config(3, response_noise=1.0))
    skill = noisy.skills()["m00"]["code"]
    deviations = [noisy.latent_quality("m00", y) - skill for y in instructions(3000, ("code",))]
    assert np.mean(deviations) == pytest.approx(0.0, abs=0.06)
    assert np.std(deviations) == pytest.approx(1.0, abs=0.05)
    assert not math.isnan(sum(deviations))


# ------------------------------------------------------------------------------- unchanged default, faster path
def test_default_tribe_is_bit_for_bit_what_it_was():
    """Recorded with the scalar implementation before the batched one (main at 583ba0c): same answers, scores and
    training, so earlier simulated results reproduce."""
    config = make_config(5, seed=7)
    tribe = build_tribe(config)
    ins = instructions(300)
    responses = tribe.generate([(m, x) for x in ins for m in tribe.members[:3]], seed=0)
    by_id = {x.id: x for x in ins}
    judged = tribe.judge(all_judge_requests(tribe, responses, by_id))
    pairs = [PreferencePair("p", "c", "r", "m00", "m01", 1.0, x.id, x.domain) for x in ins[:100]]
    with tempfile.TemporaryDirectory() as tmp:
        metrics = tribe.train(pairs, tmp, seed=0)
    rows = [r.to_dict() for r in responses] + [j.to_dict() for j in judged] + [metrics, tribe.skills()]
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    assert digest == "2d8b6571bc4573ff342c753d47556c23cb401d5ec06db5bb1966552bb95328d2"


# ------------------------------------------------------------------------------------------ unreliable judges
def perceived(score: float) -> float:
    """The value a judge saw, recovered from its score 1 + 9 * sigmoid(value)."""
    p = (score - 1.0) / 9.0
    return math.log(p / (1.0 - p))


def judged_by(tribe: SimulatedTribe, judge: str, n: int = 3000) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(what ``judge`` perceived, the true qualities, the authors) over ``n`` answers by the other members."""
    ins = instructions(n, domains=("math",))
    authors = [m for m in tribe.members if m != judge]
    responses = tribe.generate([(authors[i % len(authors)], x) for i, x in enumerate(ins)], seed=0)
    judged = tribe.judge([JudgeRequest(judge, x, r) for x, r in zip(ins, responses)])
    seen = np.array([perceived(j.score) for j in judged])
    return seen, np.array([r.meta["quality"] for r in responses]), [r.model for r in responses]


def test_unreliable_kinds_get_their_share_of_members_in_a_stable_order():
    shares = {"noisy": 0.1, "inverted": 0.3, "biased": 0.2, "colluding": 0.2}
    tribe = build_tribe(make_config(10, seed=5, unreliable_judges=shares))
    counts = {kind: list(tribe.judge_kinds.values()).count(kind) for kind in (*shares, "honest")}
    assert counts == {"noisy": 1, "inverted": 3, "biased": 2, "colluding": 2, "honest": 2}
    assert tribe.ally is not None and tribe.judge_kinds[tribe.ally] != "colluding"
    assert build_tribe(make_config(10, seed=5, unreliable_judges=shares)).judge_kinds == tribe.judge_kinds
    # who is unreliable depends on the seed, not on skills (not, say, always the weakest)
    assert build_tribe(make_config(10, seed=6, unreliable_judges=shares)).judge_kinds != tribe.judge_kinds
    honest = build_tribe(make_config(10, seed=5))
    assert set(honest.judge_kinds.values()) == {"honest"} and honest.ally is None


def test_each_unreliable_kind_perceives_what_its_model_says():
    shares = {"noisy": 0.2, "inverted": 0.2, "biased": 0.2, "colluding": 0.2}
    # modest noise (sd 0.5, 2 for the noisy judge) keeps scores off the float ends of 1 + 9 * sigmoid, where the
    # perceived value could no longer be recovered from the score
    config = make_config(
        10,
        seed=2,
        domains=["math"],
        judge_failure_rate=0.0,
        judge_noise=0.5,
        judge_noise_skill_slope=0.0,
        unreliable_judges=shares,
    )
    tribe = build_tribe(config)
    by_kind = {kind: judge for judge, kind in sorted(tribe.judge_kinds.items())}
    for kind, judge in by_kind.items():
        seen, quality, authors = judged_by(tribe, judge)
        sd = tribe.judge_noise_sd(judge, "math")
        if kind == "honest":
            assert np.std(seen - quality) == pytest.approx(sd, rel=0.1)
        elif kind == "noisy":
            base = sd / tribe.sim.unreliable_noise_factor
            assert np.std(seen - quality) == pytest.approx(sd, rel=0.1) and sd == pytest.approx(4 * base)
        elif kind == "inverted":
            assert np.std(seen + quality) == pytest.approx(sd, rel=0.1)
            assert np.corrcoef(seen, quality)[0, 1] < -0.3
        elif kind == "biased":
            assert abs(np.corrcoef(seen, quality)[0, 1]) < 0.06  # style is unrelated to quality
        else:
            for_ally = np.array([a == tribe.ally for a in authors])
            assert np.mean((seen - quality)[for_ally]) == pytest.approx(3.0, abs=0.25)
            assert np.mean((seen - quality)[~for_ally]) == pytest.approx(0.0, abs=0.15)


def test_biased_judges_agree_with_each_other_on_style():
    tribe = build_tribe(
        make_config(6, seed=4, domains=["math"], judge_failure_rate=0.0, unreliable_judges={"biased": 0.5})
    )
    first, second = [j for j, kind in tribe.judge_kinds.items() if kind == "biased"][:2]
    ins = instructions(2000, domains=("math",))
    author = next(m for m in tribe.members if m not in (first, second))
    responses = tribe.generate([(author, x) for x in ins], seed=0)
    seen = [
        [perceived(j.score) for j in tribe.judge([JudgeRequest(b, x, r) for x, r in zip(ins, responses)])]
        for b in (first, second)
    ]
    assert np.corrcoef(seen[0], seen[1])[0, 1] > 0.2


def test_independent_noise_does_not_follow_skill_or_training(tmp_path):
    tied = build_tribe(make_config(8, seed=3))
    free = build_tribe(make_config(8, seed=3, judge_noise_model="independent"))
    assert tied.skills() == free.skills()  # answering is the same tribe
    sds = {m: free.judge_noise_sd(m, "math") for m in free.members}
    assert sds != {m: tied.judge_noise_sd(m, "math") for m in tied.members}
    free.train(pairs_from(free, instructions(200)), tmp_path, seed=0)
    assert {m: free.judge_noise_sd(m, "math") for m in free.members} == sds
    ranks = lambda values: np.argsort(np.argsort(values))  # noqa: E731
    skill = [free.skills()[m]["math"] for m in free.members]
    tied_sd = [tied.judge_noise_sd(m, "math") for m in tied.members]
    assert np.corrcoef(ranks(skill), ranks(tied_sd))[0, 1] < -0.99  # skill-tied: stronger is less noisy


@pytest.mark.parametrize(
    "shares,message",
    [
        ({"noisey": 0.1}, "did you mean 'noisy'"),
        ({"honest": 0.1}, "'honest' is not an unreliable kind"),
        ({"inverted": 1.5}, "share of 'inverted' judges is 1.5"),
        ({"inverted": 0.6, "biased": 0.6}, "add up to 1.2"),
    ],
)
def test_bad_unreliable_settings_name_the_problem(shares, message):
    with pytest.raises(ConfigError, match=f"simulation.unreliable_judges.*{message}"):
        make_config(unreliable_judges=shares)


def test_too_many_unreliable_judges_after_rounding_is_an_error():
    with pytest.raises(ValueError, match="asks for 4 unreliable judges among 3 members"):
        build_tribe(make_config(3, unreliable_judges={"noisy": 0.5, "inverted": 0.5}))
