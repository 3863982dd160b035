"""Tables, figures and selection provenance from run records."""

from bench.report.figures import render_pareto, render_stability
from bench.report.select import select_cells, time_ratios, write_selection
from bench.report.table import render_table

__all__ = ["render_pareto", "render_stability", "render_table", "select_cells", "time_ratios", "write_selection"]
