"""The ``idmm tui`` dashboard (Textual). Only ``idmm_tui.cli_tui`` imports this package.

Pure helpers (no widgets): ``format`` (values as text), ``summary`` (reading summary.json),
``runs_table`` (rows, filter, sort), ``scan`` (listing a runs directory), ``timeline`` (stages, ETA),
``curves`` (metrics as per-stage columns and plotted series), ``canvas`` (a plot's points, pixel key
and picture), ``builder`` (the drawing thread), ``downsample``, ``recipe_diff``, ``colors``,
``tailer``, ``procs``, ``sysinfo``, ``keys``. The Textual app: ``app``, ``messages``, ``screens/``
(``screens/base.py``: how a screen plugs in), ``widgets/``, ``app.tcss``.
"""
