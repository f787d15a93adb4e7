"""mlpframe's Hydra plugins, registered even where Hydra's plugin scan cannot see them.

Hydra finds sweepers and launchers by walking the ``hydra_plugins`` namespace
package with :mod:`pkgutil`. setuptools' editable installs (``pip install -e .``)
serve this project's packages through an import hook that :mod:`pkgutil` cannot
list, so the scan misses ``hydra_plugins.mlpframe_*`` and
``hydra/sweeper=mlpframe_optuna`` is "not found". Importing the plugin modules by
name works through that hook; :func:`register` does so and hands the classes to
Hydra's public ``Plugins.register`` (a no-op where the scan already found them).
"""

from __future__ import annotations

import importlib

PLUGINS = (
    ("hydra_plugins.mlpframe_optuna_sweeper.mlpframe_optuna_sweeper", "MlpframeOptunaSweeper"),
    ("hydra_plugins.mlpframe_slurm_launcher", "MlpframeSlurmLauncher"),
)


def register() -> None:
    from hydra.core.plugins import Plugins
    from hydra.plugins.plugin import Plugin

    plugins = Plugins.instance()  # scans first: a plugin it found is not imported twice
    for module, name in PLUGINS:
        if f"{module}.{name}" in plugins.class_name_to_class:
            continue
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:  # an optional extra (the sweep extra) is not installed
            continue
        if issubclass(cls, Plugin):  # not a Plugin where the upstream plugin it extends is missing
            plugins.register(cls)
