"""The release (issue 16): a wheel and an sdist, installed into a fresh environment, work on their own.

``python -m build`` (or ``pip wheel`` where ``build`` is not installed) makes the distributions
from the source tree. The wheel is installed, not editable, into a new virtual environment
(``python -m venv``, no system site-packages) in a temporary folder, with its dependencies from
the package index; the checks then run from that folder, with no source tree beside them: the
kit imports from the environment, ``lsstuk_kit.sample_path()`` regenerates the sample night into
a fresh cache, ``lsstuk-kit summary`` reads it, and notebook 03's code runs (executed by the
environment's own Jupyter).

Slow (a fresh environment with every dependency: a few minutes, most of it pip), so those tests
are marked ``release``: ``make test`` skips them and ``.ci/run`` runs them
(``LSSTUK_TEST_RELEASE=1 pytest -m release tests/test_wheel.py``). The version check is quick
and always runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

import lsstuk_kit

ROOT = Path(__file__).resolve().parents[1]

def release(test):
    """Mark a test that builds or installs the distributions: skipped unless LSSTUK_TEST_RELEASE=1."""
    skip = pytest.mark.skipif(os.environ.get("LSSTUK_TEST_RELEASE") != "1",
                              reason="release test (fresh venv, a few minutes): LSSTUK_TEST_RELEASE=1 or .ci/run")
    return pytest.mark.release(skip(test))


def _run(cmd, **kwargs):
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        return subprocess.run([str(c) for c in cmd], **kwargs)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({exc.returncode}):\n{exc.stdout[-3000:]}\n"
                             f"{exc.stderr[-3000:]}") from None


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build") is not None:
        _run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    else:  # the docs extra brings build; pip alone makes the wheel
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, ROOT])
    wheels = sorted(out.glob("lsstuk_kit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], sorted(out.glob("lsstuk_kit-*.tar.gz"))


@pytest.fixture(scope="module")
def fresh(dists, tmp_path_factory):
    """A new venv with the wheel installed, and an environment pointing HOME and the cache there."""
    wheel, _ = dists
    work = tmp_path_factory.mktemp("fresh")
    venv = work / "venv"
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=work)
    print(f"\nfresh venv + wheel with its dependencies installed in {time.perf_counter() - t0:.0f} s")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(HOME=str(work / "home"), LSSTUK_KIT_CACHE=str(work / "cache"), MPLBACKEND="Agg",
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    (work / "home").mkdir()
    return venv, work, env


def test_version_from_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lsstuk_kit.__version__"}
    cff = (ROOT / "CITATION.cff").read_text()
    assert f'version: "{lsstuk_kit.__version__}"' in cff


@release
def test_wheel_and_sdist_contents(dists):
    wheel, sdists = dists
    assert wheel.name.startswith(f"lsstuk_kit-{lsstuk_kit.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lsstuk_kit/py.typed" in names and "lsstuk_kit/io.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("data/", "tests/", "notebooks/", "docs/"))]
    meta = zipfile.ZipFile(wheel).read(f"lsstuk_kit-{lsstuk_kit.__version__}.dist-info/METADATA").decode()
    assert f"Version: {lsstuk_kit.__version__}" in meta and "License-Expression: BSD-3-Clause" in meta
    assert "Project-URL" not in meta  # URLs that exist or none: the repository is not public yet
    assert "lsstuk-kit = lsstuk_kit.cli:main" in zipfile.ZipFile(wheel).read(
        f"lsstuk_kit-{lsstuk_kit.__version__}.dist-info/entry_points.txt").decode()
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")
    if sdists:  # made by `build`
        with tarfile.open(sdists[0]) as tar:
            members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
        assert {"pyproject.toml", "README.md", "LICENSE", "lsstuk_kit/__init__.py"} <= members


@release
def test_installed_wheel_imports_from_the_environment(fresh):
    venv, work, env = fresh
    out = _run([venv / "bin" / "python", "-c", "import lsstuk_kit, sys; print(lsstuk_kit.__file__); "
                "print(lsstuk_kit.__version__); print(lsstuk_kit.sample_path())"], cwd=work, env=env).stdout.split()
    assert Path(out[0]).is_relative_to(venv), out  # not the source tree
    assert out[1] == lsstuk_kit.__version__
    assert Path(out[2]).is_relative_to(work / "cache"), out  # the sample regenerated, not data/sample
    assert any(Path(out[2]).rglob("*.avro"))


@release
def test_installed_cli_summarises_the_sample(fresh):
    venv, work, env = fresh
    sample = _run([venv / "bin" / "python", "-c", "import lsstuk_kit; print(lsstuk_kit.sample_path())"],
                  cwd=work, env=env).stdout.strip()
    res = _run([venv / "bin" / "lsstuk-kit", "summary", sample], cwd=work, env=env)
    assert "alerts" in res.stdout and "lsst" in res.stdout, res.stdout
    # the same night as the source tree's data/sample (regenerated byte for byte): a difference means
    # the simulator changed and data/sample was not regenerated (or is being regenerated right now)
    n_here = len(lsstuk_kit.load_sample())
    assert re.search(rf"^\s*alerts\s+({n_here}|{n_here:,})\s*$", res.stdout, re.M), \
        f"the wheel's regenerated sample differs from data/sample ({n_here} alerts):\n{res.stdout}"


@release
def test_installed_wheel_runs_notebook_03(fresh):
    venv, work, env = fresh
    nb = work / "nb"
    nb.mkdir()
    shutil.copy(ROOT / "notebooks" / "03_filter.ipynb", nb)  # alone: no data/ or package beside it
    _run([venv / "bin" / "jupyter", "nbconvert", "--to", "notebook", "--execute",
          "--ExecutePreprocessor.timeout=600", "--ExecutePreprocessor.kernel_name=python3",
          "--output", "03_executed.ipynb", nb / "03_filter.ipynb"], cwd=nb, env=env)
    cells = json.loads((nb / "03_executed.ipynb").read_text())["cells"]
    errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    assert sum(1 for c in cells if c["cell_type"] == "code" and c.get("outputs")) >= 5
