"""Sphinx configuration of the mlpframe documentation (``sphinx-build -W -n docs docs/_build/html``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this tree, not whichever mlpframe is installed

project = "mlpframe"
author = "the mlpframe developers"
copyright = "the mlpframe developers"  # noqa: A001 (Sphinx's name)

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    # MathJax 3 from its PyPI wheel, copied into _static/mathjax: the site renders formulas offline
    "sphinx-mathjax-offline",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

# Markdown guides: $...$ and $$...$$ are mathematics; ```python run blocks are run by tests/docs
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# docstrings are Google style with reST inside (``code``, :class:, .. math::)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: no second entry beside the autodoc member
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"

# strict: every cross-reference must resolve (the build runs with -W -n)
nitpicky = True
nitpick_ignore_regex = [
    # ``Array`` is a type alias for "an array of the backend's library"; not a class to link
    ("py:class", r"(mlpframe\.backend\.)?(Array|Namespace)"),
    ("py:class", r"(numpy\.)?(np\.)?(ndarray|random\..*Generator)"),
    ("py:class", r"Any|Callable|Iterator|Mapping|Sequence|Path|collections\.abc\..*|typing\..*"),
]



def _public_bases(app, name, obj, options, bases):
    """Show a private base class (``_ConvNd``) as the public bases it derives from.

    Its docstring, the shared derivation, is appended to each public subclass's
    own, so nothing is lost; the private name would be a reference to nothing.
    """
    def public(base):
        if not base.__name__.startswith("_"):
            return [base]
        return [b for parent in base.__bases__ for b in public(parent)]

    bases[:] = list(dict.fromkeys(b for base in bases for b in public(base)))


def setup(app):
    app.connect("autodoc-process-bases", _public_bases)


html_theme = "furo"
html_title = "mlpframe"
html_static_path: list[str] = []
