"""Evaluation tools over finished runs: frozen-feature probes and pictures (no training logic here).

* :mod:`.features` — a finished stage's weights as a frozen backbone, and its features of a split;
* :mod:`.linear` — the linear probe (a classifier trained on frozen features);
* :mod:`.neighbours` — how clustered a set of points is (leave-one-out kNN accuracy);
* :mod:`.tsne` — t-SNE maps (PCA to 50 dims, then openTSNE; why a library: see its docstring);
* :mod:`.params` — backbone parameter counts and the parameter-vs-accuracy points of the paper's Fig. 3;
* :mod:`.plots` — scatter plots as PNG (Pillow), PDF/SVG (matplotlib, optional) and braille (plotext);
* :mod:`.records` — where results go: ``<run>/eval/*.json`` and ``summary["evals"]``;
* :mod:`.jobs` — the evaluations end to end on run directories, as the command line runs them.

The command line over them is :mod:`idmm_tui.cli_eval` (``idmm eval …``, ``idmm viz …``).
"""
