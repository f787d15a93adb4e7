"""The Hydra config tree of ``python -m mlpframe`` (installed as the package ``mlpframe.conf``)."""
