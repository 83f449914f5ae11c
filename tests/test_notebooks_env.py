"""Binder's environment (binder/requirements.txt) against pyproject.toml and the notebooks' imports.

``tools/run_notebooks_binder.py`` installs exactly these pins into a fresh venv and runs every
notebook with them; these checks are the fast, offline part.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOK_EXTRAS = ("kafka", "broker", "dask")  # notebook 07
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s;#]+)\s*$")


def _pins() -> dict[str, Version]:
    pins = {}
    for n, line in enumerate((BINDER / "requirements.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = _PIN.match(line)
        assert m, f"binder/requirements.txt line {n}: {line!r} is not an exact pin (name==version)"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"binder/requirements.txt pins {name} twice"
        pins[name] = Version(m.group(3))
    return pins


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in NOTEBOOK_EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


def test_binder_uses_requirements_and_runtime():
    assert not (BINDER / "environment.yml").exists(), "repo2docker would use environment.yml, not requirements.txt"
    assert re.fullmatch(r"python-3\.\d+\s*", (BINDER / "runtime.txt").read_text())
    post = (BINDER / "postBuild").read_text()
    assert "--no-deps" in post and "install -r" not in post  # the pins are installed once, by repo2docker


def test_pins_satisfy_pyproject():
    pins = _pins()
    for req in _project_requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} (pyproject.toml) is not pinned in binder/requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"binder pins {name}=={pins[name]}, not {req}"


def test_pins_are_closed_under_dependencies():
    """Every dependency of a pinned package is pinned too, at a version it accepts.

    Checked from the installed metadata of each pinned package that is installed here at the
    same version (the project's venv holds them all): pip then installs nothing unpinned.
    """
    pins = _pins()
    env = default_environment()
    env["python_version"] = ".".join(map(str, sys.version_info[:2]))
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        checked += 1
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pins, f"{name}=={version} needs {req}, which binder/requirements.txt does not pin"
            assert req.specifier.contains(pins[dep], prereleases=True), f"{name} needs {req}, pinned {pins[dep]}"
    assert checked > len(pins) // 2, "too few pinned packages installed here to check the closure"


def _notebook_imports() -> dict[str, set[str]]:
    """Top-level modules imported by the notebooks' code cells (imports guarded by ImportError left out)."""
    found: dict[str, set[str]] = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "\n".join(line for line in "".join(cell["source"]).splitlines()
                            if not line.lstrip().startswith(("%", "!")))
            tree = ast.parse(src)
            guarded = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Try) and any(
                        h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
                    guarded |= {id(n) for b in node.body for n in ast.walk(b)}
            for node in ast.walk(tree):
                if id(node) in guarded:
                    continue
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    found.setdefault(mod.split(".")[0], set()).add(nb.name)
    return found


def test_notebook_imports_are_installed_by_binder():
    pins = _pins()
    imports = _notebook_imports()
    assert {"lsstuk_kit", "numpy", "matplotlib"} <= set(imports)
    owners = metadata.packages_distributions()
    missing = {}
    for mod, notebooks in imports.items():
        if mod in sys.stdlib_module_names or mod == "lsstuk_kit":
            continue
        dists = {canonicalize_name(d) for d in owners.get(mod, [])}
        if not dists:
            pytest.fail(f"{mod} (imported by {sorted(notebooks)}) is not installed here: cannot tell its package")
        if not dists & set(pins):
            missing[mod] = sorted(notebooks)
    assert not missing, f"imported by the notebooks but not in binder/requirements.txt: {missing}"


def test_conda_environment_agrees_with_binder():
    """environment.yml (conda users) accepts Binder's versions and pins DuckDB the same way."""
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = _pins()
    specs = []
    for dep in env["dependencies"]:
        specs += dep["pip"] if isinstance(dep, dict) else [dep]
    for spec in specs:
        if spec.startswith("-e") or spec in ("pip", "."):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", spec)
        name, constraint = canonicalize_name(m.group(1)), m.group(3).strip()
        if name == "python":
            runtime = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
            assert Requirement(f"python{constraint}").specifier.contains(runtime)
            continue
        assert name in pins, f"environment.yml has {name}, binder/requirements.txt does not"
        if constraint:
            # conda's single "=" means "this version or a patch of it"; pip's "==" pins exactly
            constraint = re.sub(r"(?<![=<>!])=(?!=)", "==", constraint)
            assert Requirement(f"{name}{constraint}").specifier.contains(pins[name], prereleases=True), (
                f"environment.yml asks {spec}, Binder pins {pins[name]}")


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("0[1-7]_*.ipynb")), ids=lambda p: p.name[:2])
def test_exercises_have_hidden_solutions_that_run(nb):
    """Each workshop notebook has exercises whose solutions are hidden code cells (executed by nbmake)."""
    cells = json.loads(nb.read_text())["cells"]
    exercises = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                 and "".join(c["source"]).startswith("### Exercise")]
    assert exercises, f"{nb.name} has no exercise"
    for i in exercises:
        sol = cells[i + 1]
        assert sol["cell_type"] == "code" and "solution" in sol["metadata"].get("tags", []), (nb.name, i)
        assert sol["metadata"].get("jupyter", {}).get("source_hidden") is True, (nb.name, i)
        assert "raises-exception" not in sol["metadata"].get("tags", []) and "skip-execution" not in sol[
            "metadata"].get("tags", []), f"{nb.name}: a solution must run with the notebook"
        ast.parse("".join(sol["source"]))
    assert f"**Exercises:** {len(exercises)}" in "".join(cells[0]["source"]), f"{nb.name}: header's exercise count"
