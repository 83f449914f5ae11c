"""Sphinx configuration of the lsstuk_kit documentation site (``make docs``).

Tools, as the astronomy/PyData ecosystem uses them (astropy, mocpy, lightkurve, sncosmo):

- Sphinx, with autodoc + autosummary + numpydoc: the API reference is built from the kit's
  numpydoc docstrings, nothing written twice;
- myst-nb: the pages are Markdown (MyST), the notebooks in ``notebooks/`` are rendered with their
  outputs after being executed at build time, and the user-guide and gallery pages are MyST
  notebooks whose code cells draw their figures with the kit's own plot functions when the site
  is built (no committed PNGs). myst-nb rather than nbsphinx because it executes through
  jupyter-cache (a rebuild re-runs only notebooks whose code changed), renders MyST Markdown
  in the same parser as the pages, and needs no pandoc;
- pydata-sphinx-theme (numpy, pandas, astropy's look), sphinx-design for dropdowns and cards.

Everything is offline: no remote images, and intersphinx reads inventories shipped in
``docs/_inventories/`` (see there) instead of fetching them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import lsstuk_kit  # noqa: E402

# MyST's text notebooks (the guide and gallery pages) have no cell ids until myst-nb gives them
# some; nbformat says so for every page. Not a problem of the pages.
warnings.filterwarnings("ignore", message="Cell is missing an id field")

# -- Binder ------------------------------------------------------------------------------------
# PLACEHOLDER: the repository is not public yet. This is the only place its GitHub "owner/name"
# appears in the docs: every "launch on Binder" link is built from it. Change it on publication.
binder_repo = "lsstuk/lsstuk_kit"
binder_ref = "HEAD"


def binder_url(path: str | None = None) -> str:
    """Binder URL of the repository, opening JupyterLab on ``path`` (relative to the repo) if given."""
    url = f"https://mybinder.org/v2/gh/{binder_repo}/{binder_ref}"
    return url + (f"?labpath={path.replace('/', '%2F')}" if path else "")


# -- Project -----------------------------------------------------------------------------------
project = "lsstuk_kit"
author = "lsstuk_kit developers"
copyright = "lsstuk_kit developers"  # noqa: A001 (Sphinx's name)
release = version = lsstuk_kit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_nb",
    "sphinx_design",
]

exclude_patterns = ["_build", "_inventories", "**.ipynb_checkpoints", ".gitignore"]
root_doc = "index"

# -- Intersphinx: links into pandas, astropy and scikit-learn's documentation ------------------
# Offline: each project's objects.inv is shipped in docs/_inventories/ (taken from Debian 12's
# python-*-doc packages; provenance and versions in its README) and the links point to each
# project's current documentation. Names added since those versions are shown unlinked. mocpy
# and numpy have no packaged inventory here, so their names stay plain text.
INVENTORIES = DOCS / "_inventories"
intersphinx_mapping = {
    "pandas": ("https://pandas.pydata.org/docs/", str(INVENTORIES / "pandas-1.5.3.inv")),
    "astropy": ("https://docs.astropy.org/en/stable/", str(INVENTORIES / "astropy-5.2.1.inv")),
    "sklearn": ("https://scikit-learn.org/stable/", str(INVENTORIES / "scikit-learn-1.2.1.inv")),
}
intersphinx_timeout = 1  # never waits on the network: every inventory is a local file

# -- Autodoc / numpydoc ------------------------------------------------------------------------
autodoc_typehints = "none"  # numpydoc's Parameters/Returns name the types
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
autosummary_generate = False  # the API pages are written below, one per module
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# types in Parameters/Returns link to their documentation where an inventory knows them
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    "DataFrame": "pandas.DataFrame", "Series": "pandas.Series", "Index": "pandas.Index",
    "SkyCoord": "astropy.coordinates.SkyCoord", "Table": "astropy.table.Table",
    "Quantity": "astropy.units.Quantity", "Time": "astropy.time.Time",
    "AlertBatch": "lsstuk_kit.AlertBatch", "DaskAlerts": "lsstuk_kit.scale.DaskAlerts",
    # numpydoc's own defaults point these at Python's and numpy's glossaries, which have no
    # inventory here (a :term:/:ref: that does not resolve is a warning): plain names instead
    **{word: word for word in ("bool", "True", "False", "iterable", "sequence", "array-like", "array_like",
                               "callable", "contextmanager", "generator", "scalar", "None")},
}
numpydoc_xref_ignore = "all"  # only the aliases above become links; other type words stay text

# -- MyST / myst-nb ----------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "substitution", "dollarmath"]
myst_heading_anchors = 3
myst_substitutions = {"binder_url": binder_url(), "version": version}
nb_execution_mode = os.environ.get("LSSTUK_DOCS_EXECUTE", "cache")  # "off" for a quick look at the text
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_execution_excludepatterns: list[str] = []
suppress_warnings = [
    # the notebooks go from their title (#) to their sections (##/###) as Jupyter shows them
    "myst.header",
    # ipywidgets' live views (notebook 05's browser) have no static rendering; the page says so
    "mystnb.unknown_mime_type",
]

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"lsstuk_kit {version}"
html_static_path = ["_static"]
html_css_files = ["lsstuk.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
html_copy_source = False


# -- The API reference, written from the package itself ----------------------------------------
def public_modules() -> list[str]:
    """The kit's public modules: ``lsstuk_kit`` and every submodule without a leading underscore."""
    found = (m.name for m in pkgutil.walk_packages(lsstuk_kit.__path__, "lsstuk_kit."))
    return ["lsstuk_kit"] + sorted(n for n in found if not any(p.startswith("_") for p in n.split(".")))


def public_names(modname: str) -> list[tuple[str, object]]:
    """``(name, object)`` of the functions and classes a module offers: its ``__all__``, else its own defs."""
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, o in vars(mod).items() if not n.startswith("_")
                 and (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == modname]
    out = []
    for n in names:
        obj = getattr(mod, n)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            out.append((n, obj))
    return out


def _title(text: str, ch: str = "=") -> str:
    return f"{text}\n{ch * len(text)}\n"


def write_api_pages() -> None:
    """One page per public module: its docstring, a summary table, then each name once.

    A name re-exported by several modules is documented where users meet it first (``lsstuk_kit``,
    then the package, then the module defining it) and linked from the others.
    """
    out = DOCS / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    documented: dict[int, str] = {}
    pages = []
    for modname in public_modules():
        names = public_names(modname)
        here, elsewhere = [], []
        for n, obj in names:
            key = id(obj)
            if key in documented:
                elsewhere.append((n, documented[key]))
            else:
                documented[key] = f"{modname}.{n}"
                here.append((n, obj))
        lines = [_title(f"``{modname}``"), f".. automodule:: {modname}\n   :no-members:\n"]
        if here:
            lines.append(f".. currentmodule:: {modname}\n\n.. autosummary::\n   :nosignatures:\n")
            lines += [f"   {n}" for n, _ in here]
            lines.append("")
        if elsewhere:
            lines.append("Also importable from here, documented elsewhere: "
                         + ", ".join(f":py:obj:`{n} <{target}>`" for n, target in elsewhere) + ".\n")
        for n, obj in here:
            lines.append(_title(n, "-"))
            if inspect.isclass(obj):
                lines.append(f".. autoclass:: {modname}.{n}\n   :members:\n   :show-inheritance:\n")
            else:
                lines.append(f".. autofunction:: {modname}.{n}\n")
        text = "\n".join(lines)
        page = out / f"{modname}.rst"
        if not page.is_file() or page.read_text() != text:  # unchanged pages keep their mtime: fast rebuilds
            page.write_text(text)
        pages.append(modname)
    index = "\n".join(f"   {p}" for p in pages) + "\n"
    toc = out / "modules.txt"  # (kept for reference; api/index.rst globs the pages)
    if not toc.is_file() or toc.read_text() != index:
        toc.write_text(index)


write_api_pages()


# -- Notebooks: "launch on Binder" and hidden solutions, without editing the notebooks --------
def _notebook_source(app, docname, source):
    """Add a Binder link under each notebook's title and fold the cells tagged ``solution``.

    The notebooks tag their exercise solutions ``solution`` (Jupyter hides them); myst-nb folds a
    cell tagged ``hide-cell`` into a closed "Show code cell" dropdown, so the tag is added here.
    """
    if not docname.startswith("notebooks/"):
        return
    nb = json.loads(source[0])
    name = docname.split("/", 1)[1] + ".ipynb"
    link = (f"[![launch on Binder](/_static/binder.svg) launch on Binder]({binder_url('notebooks/' + name)})"
            f" · runs on the bundled sample; downloadable from the repository's `notebooks/{name}`")
    first = nb["cells"][0]
    text = "".join(first["source"]).split("\n", 1)
    first["source"] = text[0] + "\n\n" + link + "\n" + (text[1] if len(text) > 1 else "")
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "solution" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    source[0] = json.dumps(nb)


def setup(app):
    """Connect the hook above."""
    app.connect("source-read", _notebook_source)
