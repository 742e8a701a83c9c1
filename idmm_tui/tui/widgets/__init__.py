"""Widgets of the dashboard: the downsampling curve plot and the system pane."""
