"""pyproject.toml, environment.yml and binder/requirements.txt name the same packages."""

from __future__ import annotations

import re

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")
SKIP = {"python", "pip", "-e"}


def norm(spec: str) -> str | None:
    spec = spec.strip()
    if spec.startswith("-e") or spec == ".":
        return None
    name = _NAME.match(spec).group(1).lower().replace("_", "-")
    return None if name in SKIP else name


def conda_names(path):
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            n = norm(item)
            if n:
                names.add(n)
    return names


#: Extras the notebooks use (notebook 07): the conda and Binder environments install them too.
NOTEBOOK_EXTRAS = ("kafka", "broker", "dask")


def test_three_files_name_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {norm(d) for d in project["dependencies"]}
    for extra in NOTEBOOK_EXTRAS:
        wanted |= {norm(d) for d in project["optional-dependencies"][extra]}
    assert wanted == conda_names(ROOT / "environment.yml")
    binder = {norm(line.split("#")[0]) for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()}
    assert wanted <= binder  # exact pins with their dependencies: tests/test_notebooks_env.py
    test_extra = {norm(d) for d in project["optional-dependencies"]["test"]}
    assert wanted - {norm(d) for d in project["dependencies"]} <= test_extra  # CI runs notebook 07


def test_binder_installs_the_kit_without_resolving_again():
    assert "--no-deps" in (ROOT / "binder" / "postBuild").read_text()


def test_notebooks_stored_without_outputs():
    import json

    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, nb.name
