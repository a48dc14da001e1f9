"""Offline tools on the worker's own code: backtest, replay, scoring, reports, simulation, the demo."""
