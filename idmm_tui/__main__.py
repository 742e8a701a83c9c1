"""``python -m idmm_tui`` (and ``torchrun … -m idmm_tui run RECIPE``)."""

from idmm_tui.cli import main

main()
