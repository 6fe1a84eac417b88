"""Text tables, plots and the comparison of runs."""
