"""Command-line entry points (the only place besides ``config.py`` that uses Hydra)."""
