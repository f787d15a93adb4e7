"""Sweep support: the Optuna sweeper with resume and pruning, the pruning callback, the report plot.

Importing this package imports neither Optuna nor Hydra; the modules that need
them import them themselves.
"""
