"""``sparta report RUN_DIR``: one self-contained HTML page (plots embedded as base64 PNG) plus the PNG files.

Everything a run wrote is model output or user text, so every string from it is HTML-escaped; the page loads
nothing from outside (no external CSS, scripts or fonts) and can be mailed or published as one file.
"""

from __future__ import annotations

import base64
import html
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparta.config import load_config
from sparta.evaluation.results import BestScore, Estimate, EvalResults, PairedChange, load_results
from sparta.report import plots
from sparta.report.console import format_cell
from sparta.report.diversity import diversity_per_round
from sparta.report.files import ReportError
from sparta.report.judging import JudgeAgreement, JudgeFailures, judge_agreement, judge_failures
from sparta.report.leaderboard import round_summaries, run_leaderboard
from sparta.report.pair_examples import PairExample, preference_examples
from sparta.report.ratings import RatingHistory, rating_history
from sparta.report.wins import WinMatrix, win_matrix
from sparta.rundir import atomic_write_bytes

DISPLAY_CHARS = 700
"""Pair texts are cut to this many characters on the page (never in the run's files)."""
FAILURE_CHARS = 300
PAIR_EXAMPLES = 4
FAILURE_EXAMPLES = 3
PLOT_FILES = ("ratings.png", "win_matrix.png", "judges.png", "eval.png")

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f; background: #fff;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
nav { background: #f5f5f7; padding: 0.5em 0.8em; border-radius: 6px; font-size: 0.95em; }
nav a { margin-right: 1em; color: #0b5cad; text-decoration: none; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d6d6d6; padding: 0.28em 0.6em; vertical-align: top; }
th { background: #f0f0f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; display: block; margin: 0.6em 0; }
.note { color: #555; font-size: 0.9em; }
.meta td:first-child { color: #555; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f9; border: 1px solid #e4e4e8;
      padding: 0.5em 0.7em; margin: 0.2em 0; font-size: 0.85em; max-height: 22em; overflow: auto; }
.pair { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.9em; margin: 0.9em 0; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 0.8em; }
.chosen h4 { color: #1a7f37; } .rejected h4 { color: #b42318; }
h4 { margin: 0.4em 0 0.2em; font-size: 0.95em; }
details summary { cursor: pointer; color: #0b5cad; }
"""


class Html(str):
    """Markup built by this module, placed in a table cell without escaping."""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    return format_cell(value, digits, missing="–")


def truncate(text: str, limit: int) -> str:
    """Cut for display; the cut is said in the text so nobody mistakes it for the model's own ending."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def pre(text: str, limit: int) -> Html:
    return Html(f"<pre>{esc(truncate(text, limit))}</pre>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    """Numbers right-aligned; every cell escaped unless it is ``Html``."""

    def cell(v: Any) -> str:
        if isinstance(v, Html):
            return f"<td>{v}</td>"
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        return f'<td class="num">{esc(fmt(v, digits))}</td>' if numeric else f"<td>{esc(fmt(v, digits))}</td>"

    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" id="plot-{esc(name)}" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


# -- sections -------------------------------------------------------------------------------------------
@dataclass
class Section:
    id: str
    title: str
    body: str


def header(run_dir: Path, history: RatingHistory) -> str:
    config = load_config(run_dir / "config.yaml")
    t = config.tournament
    rows = [
        ("run", config.run.name),
        ("members", ", ".join(config.member_names())),
        ("rounds rated", f"{len(history.rounds) - 1} of {config.run.rounds} configured"),
        ("instructions per round", config.run.instructions_per_round),
        ("task", config.data.task),
        ("backend / judge", f"{config.backend.kind} / {config.judge.type}"),
        ("aggregation / update rule", f"{t.aggregation} / {t.update_rule}"),
        ("match-making", f"alpha {t.alpha}, k {t.k}; judges: {t.judges}"),
        ("seed", config.run.seed),
    ]
    meta = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    yaml_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    return (
        f"<h1>SPARTA run report: {esc(config.run.name)}</h1>"
        f'<table class="meta"><tbody>{meta}</tbody></table>'
        f"<details><summary>config.yaml</summary><pre>{esc(yaml_text)}</pre></details>"
    )


def leaderboard_section(run_dir: Path) -> Section:
    rows = [
        (
            r["rank"],
            r["member"],
            r["reputation"],
            round(r["bt"]),
            f"{fmt(r['bt_low'], 0)} .. {fmt(r['bt_high'], 0)}" if r.get("bt_low") is not None else "–",
            f"{r['wins']}-{r['losses']}-{r['ties']}",
        )
        for r in run_leaderboard(run_dir)
    ]
    body = table(["rank", "member", "reputation", "Bradley-Terry", "95% interval", "W-L-T"], rows) + note(
        "Reputation after the last rated round; Bradley-Terry ratings (mean 1000, bootstrap interval) and the "
        "win-loss-tie record count the matches of all rated rounds."
    )
    return Section("leaderboard", "Leaderboard", body)


def ratings_section(history: RatingHistory, png: bytes) -> Section:
    headers = ["member"] + [f"round {r}" for r in history.rounds]
    rows = [[m, *values] for m, values in history.ratings.items()]
    body = (
        img("ratings", png, "reputation per round per member")
        + note(f"Round 0 is the configured initial rating ({fmt(history.initial, 1)}).")
        + table(headers, rows)
    )
    return Section("ratings", "Reputation per round", body)


def eval_section(scores: EvalResults | None, png: bytes | None) -> Section:
    if scores is None or png is None:
        body = note("No evaluation yet: run <code>sparta eval RUN_DIR</code>, then make the report again.")
        return Section("eval", "Evaluation", body)
    last = max(scores.rounds)
    rows = []
    for task in scores.tasks:
        change = scores.change(last, task)
        for member in scores.members():
            series = scores.series(task, member)
            if series:
                first, final = series[0], series[-1]
                paired = _paired_cells(change.members.get(member) if change else None, final.score - first.score)
                rows.append((task, member, first.round, first.score, final.round, final.score, *paired))
        rows += _summary_rows(task, "pool mean", scores.pool_mean(task), change.mean if change else None)
        rows += _summary_rows(task, "best member", scores.best_member(task), change.best if change else None)
    headers = ["task", "member", "first round", "score", "last round", "score", "change", "95% paired CI", "McNemar p"]
    missing = "" if scores.paired else " This eval.json predates paired statistics: run <code>sparta eval</code> again."
    body = (
        img("eval", png, "evaluation score per round per member and the pool mean")
        + note(
            "Bands: the intervals written in eval.json. The dashed line is the pool mean (per item the mean over "
            "the members, then the mean over items); the best member is the best of each round."
        )
        + table(headers, rows)
        + note(
            "Change: the last round minus the first on the items scored in both, with a paired bootstrap interval "
            "(items resampled, both rounds' scores kept together). For 0/1 scores, McNemar's exact p-value and, in "
            f"brackets, the items gained (0 to 1) and lost (1 to 0).{missing}"
        )
    )
    return Section("eval", "Evaluation", body)


def _paired_cells(change: PairedChange | None, unpaired: float) -> tuple[Any, Any, Any]:
    """change, its interval, McNemar's p-value (gained/lost); without paired statistics (an eval.json written
    before them) the change of the means, ``unpaired``."""
    if change is None:
        return (unpaired, None, None)
    if change.diff is None:
        return (None, None, None)
    interval = f"{change.low:+.3f} .. {change.high:+.3f}" if change.low is not None else None
    p_value = f"{change.p_value:.3g} (+{change.gained}/-{change.lost})" if change.p_value is not None else None
    return (change.diff, interval, p_value)


def _summary_rows(
    task: str, name: str, cells: dict[int, Estimate], change: PairedChange | None
) -> list[tuple[Any, ...]]:
    """The first and last evaluated round of the pool mean or of the best member (who may change)."""
    if not cells:
        return []
    first, last = cells[min(cells)], cells[max(cells)]
    who = f" ({esc(first.member)}, then {esc(last.member)})" if isinstance(first, BestScore) else ""
    paired = _paired_cells(change, last.score - first.score)
    return [(task, Html(f"<b>{name}</b>{who}"), min(cells), first.score, max(cells), last.score, *paired)]


def diversity_section(per_round: Sequence[tuple[int, dict[str, Any]]]) -> Section:
    if not per_round:
        return Section(
            "diversity",
            "Diversity",
            note("No diversity yet: it is measured on the answers of <code>sparta eval RUN_DIR</code>."),
        )
    domains = list(dict.fromkeys(d for _, div in per_round for d in div["domains"]))
    rows = [
        (
            r,
            div["instructions"],
            div["mean_disagreement"],
            *[f"{esc(div['best'][d])} ({div['spread'][d]:.2f})" if d in div["best"] else "-" for d in domains],
        )
        for r, div in per_round
    ]
    r, last = per_round[-1]
    members = [
        (m, *[last["accuracy"][m].get(d) for d in domains], last["accuracy"][m].get("all")) for m in last["members"]
    ]
    body = (
        note(
            "Disagreement: share of held-out prompts on which two members' extracted answers differ, averaged over "
            "pairs. Per domain: the most accurate member and, in brackets, best minus worst accuracy (how "
            "specialised the pool is). Measured on the greedy answers of <code>sparta eval</code>."
        )
        + table(["round", "prompts", "mean disagreement", *domains], rows)
        + f"<h3>Accuracy per domain, round {r}</h3>"
        + table(["member", *domains, "all"], members)
    )
    return Section("diversity", "Diversity", body)


def wins_section(matrix: WinMatrix, png: bytes) -> Section:
    total = sum(sum(row) for row in matrix.games) // 2
    body = img("win_matrix", png, "win matrix: share of matches won by row against column") + note(
        f"All {total} rated matches of all rated rounds. Each cell: the share the row member won against the "
        "column member (a tie counts half), and wins/matches."
    )
    return Section("wins", "Win matrix", body)


def judges_section(agreement: Sequence[JudgeAgreement], failures: Sequence[JudgeFailures], png: bytes) -> Section:
    rows = [(a.judge, a.matches, a.agreement, a.ties, a.scores, a.mad) for a in agreement]
    failure_rows = [
        (
            f.judge,
            f.judgments,
            f.failures,
            "–" if f.rate is None else f"{100 * f.rate:.1f}%",
            ", ".join(f"{reason} ({n})" for reason, n in f.reasons.most_common()) or "–",
            Html("".join(pre(x, FAILURE_CHARS) for x in f.examples)) if f.examples else "–",
        )
        for f in failures
    ]
    body = (
        img("judges", png, "judge agreement with the aggregate, deviation from it, and failure rate")
        + "<h3>Agreement with the aggregate</h3>"
        + table(
            ["judge", "matches (both sides scored)", "agrees", "own ties", "responses scored", "mean |score - aggr.|"],
            rows,
        )
        + note(
            "A judge agrees when the side it scored higher is the side with the higher aggregated score in "
            "outcomes.jsonl (a tie agrees only with a tie). The aggregate includes the judge's own score, so agreement "
            "is biased upward, more so in a small pool."
        )
        + "<h3>Failures</h3>"
        + table(["judge", "judgments", "failures", "rate", "reasons", "example raw texts"], failure_rows)
        + note("Failed judgments are excluded from aggregation, never replaced by a default score.")
    )
    return Section("judges", "Judges", body)


def _cut(truncated: bool) -> str:
    return ", cut by max_new_tokens" if truncated else ""


def pairs_section(examples: Sequence[PairExample]) -> Section:
    if not examples:
        return Section("pairs", "Preference pairs", note("No preference pair was kept in any rated round."))
    cards = []
    for example in examples:
        p = example.pair
        cards.append(
            '<div class="pair">'
            f"<b>round {example.round}</b>: {esc(p.chosen_model)} preferred over {esc(p.rejected_model)}, "
            f"margin {esc(fmt(p.margin))}"
            f"<h4>prompt</h4>{pre(p.prompt, DISPLAY_CHARS)}"
            '<div class="sides">'
            f'<div class="chosen"><h4>chosen ({esc(p.chosen_model)}){_cut(p.chosen_truncated)}</h4>'
            f"{pre(p.chosen, DISPLAY_CHARS)}</div>"
            f'<div class="rejected"><h4>rejected ({esc(p.rejected_model)}){_cut(p.rejected_truncated)}</h4>'
            f"{pre(p.rejected, DISPLAY_CHARS)}</div>"
            "</div></div>"
        )
    r = examples[0].round
    body = note(
        f"{len(examples)} pairs of round {r}, spread from the largest margin to the smallest. Texts longer than "
        f"{DISPLAY_CHARS} characters are truncated here for display only; the full texts are in "
        f"round_{r:03d}/pairs.jsonl."
    ) + "".join(cards)
    return Section("pairs", "Preference pairs", body)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def training_summary(metrics: dict[str, Any]) -> str:
    """Scalars as key=value; a table of per-member dicts as the mean of each numeric key over the members."""
    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            keys = dict.fromkeys(k for v in value.values() for k in v)
            for k in keys:
                nums = [v[k] for v in value.values() if _is_number(v.get(k))]
                if nums:
                    parts.append(f"{k} (mean of {len(nums)} {key})={fmt(float(statistics.fmean(nums)))}")
        elif not isinstance(value, (dict, list)):
            parts.append(f"{key}={fmt(value)}")
    return "; ".join(parts) or "–"


def rounds_section(run_dir: Path) -> Section:
    rows = [
        (
            s["round"],
            s["matches"],
            s["rated"],
            s["pairs"],
            s["judgments"],
            s["judge_failures"],
            s["truncated_answers"],
            s["pairs_dropped_truncated"],
            s["pairs_too_long"],
            training_summary(s["training"]),
        )
        for s in round_summaries(run_dir)
    ]
    headers = ["round", "matches", "rated", "pairs", "judgments", "judge failures", "answers cut", "pairs dropped: cut"]
    body = table([*headers, "pairs too long", "training"], rows) + note(
        "answers cut: answers that reached max_new_tokens (a prefix, never scored or trained on as complete); "
        "pairs dropped: cut: pairs not trained on because an answer was cut (tournament.truncated: drop); "
        "pairs too long: the most pairs one member could not train on whole within training.max_length."
    )
    return Section("rounds", "Rounds", body)


# -- the page -------------------------------------------------------------------------------------------
def page(title: str, head: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body>{head}<nav>{nav}</nav>{body}</body></html>\n"
    )


def build_report(run_dir: Path) -> tuple[str, dict[str, bytes]]:
    """The page's HTML and the PNGs it embeds, by file name."""
    run_dir = Path(run_dir)
    history = rating_history(run_dir)
    matrix = win_matrix(run_dir)
    agreement = judge_agreement(run_dir)
    failures = judge_failures(run_dir, FAILURE_EXAMPLES)
    scores = load_results(run_dir)
    pngs = {
        "ratings.png": plots.ratings_png(history),
        "win_matrix.png": plots.win_matrix_png(matrix),
        "judges.png": plots.judges_png(agreement, failures),
    }
    if scores is not None and any(s.score is not None for s in scores.scores):
        pngs["eval.png"] = plots.eval_png(scores)
    sections = [
        leaderboard_section(run_dir),
        ratings_section(history, pngs["ratings.png"]),
        eval_section(scores, pngs.get("eval.png")),
        diversity_section(diversity_per_round(run_dir)),
        wins_section(matrix, pngs["win_matrix.png"]),
        judges_section(agreement, failures, pngs["judges.png"]),
        pairs_section(preference_examples(run_dir, PAIR_EXAMPLES)),
        rounds_section(run_dir),
    ]
    title = f"SPARTA report: {load_config(run_dir / 'config.yaml').run.name}"
    return page(title, header(run_dir, history), sections), pngs


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html and the PNGs beside it; a stale plot the report no longer has is removed."""
    run_dir = Path(run_dir)
    for name in ("state.json", "config.yaml"):
        if not (run_dir / name).is_file():
            raise ReportError(f"{run_dir} is not a run directory: {name} is missing")
    text, pngs = build_report(run_dir)
    for name in PLOT_FILES:
        path = run_dir / name
        if name in pngs:
            atomic_write_bytes(path, pngs[name])
        else:
            path.unlink(missing_ok=True)
    out = run_dir / "report.html"
    atomic_write_bytes(out, text.encode("utf-8"))
    return out
