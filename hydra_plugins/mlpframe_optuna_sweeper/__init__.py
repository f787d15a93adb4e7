"""mlpframe's Optuna sweeper as a Hydra plugin (``hydra/sweeper=mlpframe_optuna``).

Hydra only loads sweepers from the ``hydra_plugins`` namespace package; the logic
lives in :mod:`mlpframe.sweep.optuna_sweeper`.
"""
