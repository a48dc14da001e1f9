"""Incremental model updates: the updater and its model store."""
