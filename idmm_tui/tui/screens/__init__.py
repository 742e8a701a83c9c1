"""Screens of the dashboard: runs table, run view, compare, launch, zoo, modals."""
