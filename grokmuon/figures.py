"""The figures, one function each, reading only the results table (and, for the curves, the metrics.csv
files its run_dir column points to). Each writes <out>/<name>.png and .pdf and returns their paths.
This module is their registry (FIGURES, by the name `grokmuon figures --only` takes); they are drawn in

  figures_epochs.py  from runs.csv alone: fig1 and fig2 (box plots), fig3 (Kaplan-Meier), fig5 (scan)
  figures_curves.py  from each run's metrics.csv: fig4 (accuracy curves), fig6 (probes)
  figures_phases.py  fig7, the phases of grokking (cli.py adds it: runs with the Fourier probes)
  figures_base.py    what they share: colours per arm, labels, the grid, the legend, saving
"""
from __future__ import annotations

from .figures_curves import fig4_curves_task, fig6_probes
from .figures_epochs import fig1_boxplot_optimizer, fig2_boxplot_by, fig3_km_task, fig5_scan

FIGURES = {
    "boxplot": lambda d, o: fig1_boxplot_optimizer(d, o),
    "boxplot_task": lambda d, o: fig2_boxplot_by(d, o, "task"),
    "boxplot_head": lambda d, o: fig2_boxplot_by(d, o, "head"),
    "km": fig3_km_task,
    "curves": fig4_curves_task,
    "scan": fig5_scan,      # made by default only when the table is a scan (figures_cmd)
    "probes": fig6_probes,  # made by default only when its runs were trained with probes
}
