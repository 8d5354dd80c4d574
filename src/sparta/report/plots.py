"""The report's figures as PNG bytes, drawn with matplotlib's Agg canvas.

Figures are built as ``Figure`` objects on their own Agg canvas rather than through pyplot, so making a report
neither needs a display nor touches a global backend or figure list that a caller may be using.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparta.evaluation.results import EvalResults
from sparta.report.judging import JudgeAgreement, JudgeFailures
from sparta.report.ratings import RatingHistory
from sparta.report.wins import WinMatrix

DPI = 110


def label(text: str) -> str:
    """Text from the run shown verbatim: a '$' would otherwise start matplotlib's math mode."""
    return str(text).replace("$", r"\$")


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _legend(ax, handles: list, names: Sequence[str]) -> None:
    """Explicit labels, so a name starting with '_' is still listed."""
    if handles:
        ax.legend(handles, [label(n) for n in names], loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def ratings_png(history: RatingHistory) -> bytes:
    """Reputation after each round (round 0: the configured initial rating)."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    handles = []
    for color, values in zip(_colors(len(history.ratings)), history.ratings.values()):
        (line,) = ax.plot(history.rounds, values, marker="o", markersize=3.5, color=color, linewidth=1.6)
        handles.append(line)
    ax.axhline(history.initial, color="0.6", linestyle=":", linewidth=1)
    ax.set_xticks(history.rounds)
    ax.set_xlabel("round")
    ax.set_ylabel("reputation")
    ax.set_title("Reputation per round")
    ax.grid(alpha=0.3)
    _legend(ax, handles, list(history.ratings))
    return _png(fig)


def win_matrix_png(matrix: WinMatrix) -> bytes:
    """Share of rated matches the row member won against the column member, wins/games in each cell."""
    n = len(matrix.members)
    side = max(3.5, 0.75 * n + 2.0)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    grid = [[matrix.share(i, j) for j in range(n)] for i in range(n)]
    values = [[float("nan") if v is None else v for v in row] for row in grid]
    image = ax.imshow(values, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_facecolor("0.92")
    small = n > 8
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            share = grid[i][j]
            wins, games = matrix.wins[i][j], matrix.games[i][j]
            text = "–" if share is None else f"{share:.2f}\n{wins:g}/{games}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5 if small else 8.5, color="black")
    names = [label(m) for m in matrix.members]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("opponent (column)")
    ax.set_ylabel("member (row)")
    ax.set_title("Share of matches won by row against column")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share won")
    return _png(fig)


def judges_png(agreement: Sequence[JudgeAgreement], failures: Sequence[JudgeFailures]) -> bytes:
    """Per judge: agreement with the aggregate, mean absolute deviation from it, and failure rate."""
    fig = _figure(11.0, 3.6)
    axes = fig.subplots(1, 3)
    names = [label(a.judge) for a in agreement]
    rates = [None if f.rate is None else 100 * f.rate for f in failures]
    panels = [
        (axes[0], [a.agreement for a in agreement], names, "share agreeing with the aggregate", (0.0, 1.0), "{:.2f}"),
        (axes[1], [a.mad for a in agreement], names, "mean |own score - aggregate|", None, "{:.2f}"),
        (axes[2], rates, [label(f.judge) for f in failures], "failed judgments (%)", None, "{:.1f}%"),
    ]
    for ax, values, labels, title, limits, form in panels:
        heights = [0.0 if v is None else v for v in values]
        ax.bar(range(len(heights)), heights, color="#4c72b0")
        for x, v in enumerate(values):
            text = "n/a" if v is None else form.format(v)
            ax.text(x, 0.0 if v is None else v, text, ha="center", va="bottom", fontsize=8)
        crowded = len(labels) > 5
        ax.set_xticks(range(len(labels)), labels, rotation=45 if crowded else 0, ha="right" if crowded else "center")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if limits:
            ax.set_ylim(*limits)
            ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1)
        else:
            top = max(heights, default=0.0)
            ax.set_ylim(0.0, top * 1.2 if top > 0 else 1.0)
    return _png(fig)


def eval_png(scores: EvalResults) -> bytes:
    """One panel per task: every member's score per round and the pool mean (bands: their intervals)."""
    tasks = scores.tasks
    cols = min(3, max(1, len(tasks)))
    rows = -(-len(tasks) // cols)
    fig = _figure(4.2 * cols + 1.6, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    members = scores.members()
    colors = dict(zip(members, _colors(len(members))))
    handles: dict[str, object] = {}
    pool_line = None
    for k, task in enumerate(tasks):
        ax = axes[k // cols][k % cols]
        for member in members:
            series = scores.series(task, member)
            if not series:
                continue
            x = [p.round for p in series]
            y = [p.score for p in series]
            (line,) = ax.plot(x, y, marker="o", markersize=3.5, color=colors[member], linewidth=1.3)
            handles.setdefault(member, line)
            if all(p.low is not None and p.high is not None for p in series):
                ax.fill_between(x, [p.low for p in series], [p.high for p in series], color=colors[member], alpha=0.12)
        mean = scores.pool_mean(task)
        if mean:
            x = list(mean)
            mean_points = list(mean.values())
            (pool_line,) = ax.plot(x, [p.score for p in mean_points], color="black", linestyle="--", linewidth=2.2)
            if all(p.low is not None and p.high is not None for p in mean_points):
                low, high = [p.low for p in mean_points], [p.high for p in mean_points]
                ax.fill_between(x, low, high, color="black", alpha=0.08)
        ax.set_xticks(scores.rounds)
        ax.set_title(label(task), fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
    for k in range(len(tasks), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    lines, names = list(handles.values()), [label(n) for n in handles]
    if pool_line is not None:
        lines, names = lines + [pool_line], names + ["pool mean"]
    if lines:
        fig.legend(lines, names, loc="outside right center", frameon=False)
    return _png(fig)


def aggregation_study_png(summary: Sequence[dict], kinds: Sequence[str], metrics: dict[str, str]) -> bytes:
    """One panel per (metric, kind of unreliable judge): each rule's mean ± sd over seeds against the share of
    unreliable judges; the 0 % point is the run without any, shared by every kind."""
    rules = list(dict.fromkeys(entry["aggregation"] for entry in summary))
    index = {(e["kind"], e["share"], e["aggregation"]): e for e in summary}
    fig = _figure(3.1 * len(kinds) + 1.6, 2.6 * len(metrics))
    axes = fig.subplots(len(metrics), len(kinds), squeeze=False, sharex=True)
    handles = []
    for row, (metric, title) in enumerate(metrics.items()):
        for column, kind in enumerate(kinds):
            ax = axes[row][column]
            shares = sorted({e["share"] for e in summary if e["kind"] in (kind, "none")})
            for color, rule in zip(_colors(len(rules)), rules):
                points = [index.get(("none" if share == 0 else kind, share, rule)) for share in shares]
                xs = [100 * s for s, p in zip(shares, points) if p]
                ys = [p[metric] for p in points if p]
                errors = [p[f"{metric}_sd"] for p in points if p]
                line = ax.errorbar(xs, ys, yerr=errors, color=color, marker="o", markersize=3, capsize=2, linewidth=1.4)
                if row == 0 and column == 0:
                    handles.append(line)
            ax.grid(True, color="0.9", linewidth=0.6)
            if row == 0:
                ax.set_title(f"{label(kind)} judges", fontsize=10)
            if column == 0:
                ax.set_ylabel(title, fontsize=9)
            if row == len(metrics) - 1:
                ax.set_xlabel("unreliable judges (% of members)", fontsize=9)
    _legend(axes[0][-1], handles, rules)
    return _png(fig)
