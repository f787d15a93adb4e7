"""The documentation site builds strictly and renders its formulas offline.

The build is Sphinx with ``-W --keep-going -n``: a warning, a broken cross-reference or
a missing page fails it. The built pages must not load anything from the network, and
in headless Chromium (when installed; skipped visibly otherwise) MathJax, shipped inside
the site, must typeset every formula of a page, with all host names unresolvable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("sphinx", "furo", "myst_parser"):
        pytest.importorskip(module, reason=f"the docs extra is not installed ({module}): pip install '.[docs]'")
    out = tmp_path_factory.mktemp("site") / "html"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                           str(REPO / "docs"), str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"strict docs build failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"docs built in {time.perf_counter() - start:.1f} s")
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index", "contract", "guides/quickstart", "guides/own-layer", "guides/models-in-configs",
                 "guides/commands", "guides/data", "guides/runs", "speed", "guides/mnist1d-table", "guides/mpi",
                 "guides/sweeps-tensorboard",
                 "guides/conv-recurrent", "guides/slurm", "guides/gpu", "api/nn", "api/nn-conv", "api/nn-recurrent",
                 "api/gradcheck", "api/backend", "api/optim"):
        assert (site / f"{page}.html").is_file(), page
    api = (site / "api" / "nn.html").read_text()
    for name in ("Module", "Linear", "Sequential", "CrossEntropyLoss", "BatchNorm1d"):
        assert f'id="mlpframe.nn.{name}"' in api, name
    assert 'id="mlpframe.gradcheck.assert_gradients_match"' in (site / "api" / "gradcheck.html").read_text()
    sweeps = (site / "guides" / "sweeps-tensorboard.html").read_text()
    for shot in ("tensorboard-scalars.png", "tensorboard-hparams.png"):
        assert shot in sweeps and (site / "_images" / shot).is_file(), shot
    table = (site / "guides" / "mnist1d-table.html").read_text()
    assert "results.png" in table and (site / "_images" / "results.png").is_file()


def test_every_public_nn_name_is_in_the_reference_once(site):
    from mlpframe import nn

    pages = [(site / "api" / f"{name}.html").read_text() for name in ("nn", "nn-conv", "nn-recurrent")]
    for name in nn.__all__:
        found = sum(page.count(f'id="mlpframe.nn.{name}"') for page in pages)
        assert found == 1, f"mlpframe.nn.{name} is described {found} times in the API reference"


def test_the_backward_derivations_are_mathematics(site):
    """The layers' derivations are ``.. math::`` blocks, rendered by MathJax, not literal text."""
    for page, names in (("nn", ("Linear", "Softmax", "CrossEntropyLoss", "BatchNorm1d", "LayerNorm", "Dropout")),
                        ("nn-conv", ("Conv1d", "MaxPool2d", "AvgPool1d")),
                        ("nn-recurrent", ("GRU", "LSTM")),
                        ("optim", ("SGD", "Adam"))):
        html = (site / "api" / f"{page}.html").read_text()
        for name in names:
            start = html.index(f'id="mlpframe.{"optim" if page == "optim" else "nn"}.{name}"')
            end = html.find('<dl class="py class">', start)
            assert '<div class="math notranslate nohighlight">' in html[start:end if end > 0 else None], \
                f"{page}: {name} has no displayed formula"


def test_the_site_loads_nothing_from_the_network(site):
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)
    for page in site.rglob("*.html"):
        hits = remote.findall(page.read_text())
        assert not hits, f"{page.relative_to(site)} loads {hits}"
    own_layer = (site / "guides" / "own-layer.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js' in own_layer


@pytest.mark.skipif(_chromium() is None, reason="no Chromium to render the pages (apt-get install chromium)")
@pytest.mark.parametrize("page", ["guides/own-layer", "api/nn", "api/nn-conv", "api/nn-recurrent", "api/optim",
                                  "contract"])
def test_formulas_render_in_headless_chromium_offline(site, page, tmp_path):
    html = (site / f"{page}.html").read_text()
    n_math = html.count('class="math notranslate nohighlight"')
    assert n_math > 0, f"{page} has no formulas to render"
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
         (site / f"{page}.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    typeset = dom.count("<mjx-container")
    assert typeset == n_math, f"{page}: MathJax typeset {typeset} of {n_math} formulas"
    # a TeX error becomes <mjx-merror>; an undefined macro is typeset in red
    assert "<mjx-merror" not in dom and 'mathcolor="red"' not in dom, f"{page}: MathJax reports a TeX error"
