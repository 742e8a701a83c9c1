"""The ``idmm tui`` dashboard (Textual). Only ``idmm_tui.cli_tui`` imports this package.

Pure helpers (no Textual): ``downsample``, ``tailer``, ``model``, ``procs``, ``sysinfo``.
The Textual app: ``app``, ``messages``, ``screens/``, ``widgets/``, ``app.tcss``.
"""
