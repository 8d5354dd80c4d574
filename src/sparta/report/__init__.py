"""What a run shows: leaderboards, tables, plots and the HTML report."""
