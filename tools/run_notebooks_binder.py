"""Run every notebook with exactly Binder's environment, measuring peak memory and time.

What it does, like Binder (repo2docker with ``binder/requirements.txt``) would:

1. copies the project's files (``git ls-files``: a clean clone, without ``.venv`` or caches) into a
   work folder, so that nothing beside the project (``../shared``) is visible, as on Binder;
2. creates a fresh virtual environment there, ``pip install -r binder/requirements.txt``, then
   the kit itself with ``--no-deps`` (as ``binder/postBuild`` does), and runs ``pip check``;
3. executes each notebook (01-09) in its own process, pinned to one core (``taskset -c 0`` and
   ``OMP_NUM_THREADS=1`` etc.), with a fresh ``HOME`` and kit cache, and measures its wall time
   and its peak resident memory: the largest sum of RSS over the whole process tree (the
   executing client, the kernel and the kernel's children, such as a local Kafka broker),
   polled every 50 ms, and never below the largest single process's ``ru_maxrss``;
4. prints a table and exits non-zero if any notebook fails, peaks at or above ``--max-gb``
   (default 1.5 GB, Binder gives 1-2 GB) or takes ``--max-seconds`` (default 180 s) or more.

Linux only (``/proc``, ``taskset``). Usage::

    python tools/run_notebooks_binder.py                 # everything, in a temporary folder
    python tools/run_notebooks_binder.py --keep DIR      # reuse/keep DIR (venv kept between runs)
    python tools/run_notebooks_binder.py 06 07           # only these notebooks
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")

#: Executed inside the fresh environment, one notebook per process.
_EXECUTE = r"""
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=int(sys.argv[2]), kernel_name="python3",
               resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
"""


def _run(cmd, **kwargs):
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def _children():
    """Map parent pid -> child pids, from /proc."""
    tree = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(p.name))
    return tree


def _tree_rss(pid: int) -> int:
    """Sum of the resident set sizes (bytes) of ``pid`` and all its descendants."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(tree.get(p, ()))
    return total


def copy_project(dest: Path) -> Path:
    """Copy the project's tracked and new (not ignored) files: what a clone of this commit would hold."""
    if dest.exists():
        shutil.rmtree(dest)
    git = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True)
    if git.returncode != 0 or not (ROOT / ".git").exists():  # an exported tree: everything but local state
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".venv", "__pycache__", "*.egg-info", ".*cache",
                                                                  "build", ".ipynb_checkpoints"))
        return dest
    files = git.stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def make_env(venv: Path, project: Path) -> Path:
    """A fresh venv with binder/requirements.txt, then the kit with --no-deps; returns its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    _run([python, "-m", "pip", "install", "--quiet", "-r", project / "binder" / "requirements.txt"])
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", project])
    _run([python, "-m", "pip", "check"])
    return python


def run_notebook(python: Path, nb: Path, home: Path, max_seconds: float, cpu: str = "0") -> dict:
    """Execute one notebook in its own process tree; return its peak memory, time and status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSSTUK_", "JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), LSSTUK_KIT_CACHE=str(home / "cache"), MPLBACKEND="agg", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    cmd = [str(python), "-c", _EXECUTE, str(nb), str(int(max_seconds) + 60)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=nb.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read().decode(errors="replace")
    # ru_maxrss of the largest waited-for descendant (KiB); a floor under the polled sum
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after > before:
        peak = max(peak, after * 1024)
    return {"notebook": nb.name, "ok": proc.returncode == 0, "seconds": seconds, "peak_gb": peak / 1e9,
            "error": "" if proc.returncode == 0 else out[-3000:]}


def main(argv=None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", help="notebook number prefixes to run (default: all)")
    ap.add_argument("--keep", type=Path, help="work folder to use and keep (default: a temporary one, removed)")
    ap.add_argument("--max-gb", type=float, default=1.5, help="peak memory limit per notebook, GB (default 1.5)")
    ap.add_argument("--max-seconds", type=float, default=180, help="time limit per notebook, s (default 180)")
    ap.add_argument("--cpu", default="0", help="core to pin the notebooks to (taskset -c; default 0)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if not Path("/proc/self/statm").exists():
        ap.error("needs Linux (/proc)")

    work = args.keep or Path(tempfile.mkdtemp(prefix="lsstuk-binder-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        project = copy_project(work / "project")
        python = make_env(work / "venv", project)
        notebooks = sorted((project / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if args.only:
            notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.only))]
        results = []
        for nb in notebooks:
            r = run_notebook(python, nb, work / "home", args.max_seconds, args.cpu)
            r["pass"] = r["ok"] and r["peak_gb"] < args.max_gb and r["seconds"] < args.max_seconds
            results.append(r)
            print(f"{r['notebook']:42s} {r['peak_gb']:5.2f} GB {r['seconds']:6.1f} s  "
                  f"{'ok' if r['pass'] else 'FAIL'}", flush=True)
            if not r["ok"]:
                print(r["error"], flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nBinder environment (binder/requirements.txt), one core; limits {args.max_gb} GB, "
          f"{args.max_seconds:.0f} s per notebook")
    print(f"| {'notebook':40s} | peak memory | wall time | result |")
    print(f"| {'-' * 40} | ----------: | --------: | ------ |")
    for r in results:
        why = "ok" if r["pass"] else ("error" if not r["ok"] else "over limit")
        print(f"| {r['notebook']:40s} | {r['peak_gb']:8.2f} GB | {r['seconds']:7.1f} s | {why:6s} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    failed = [r["notebook"] for r in results if not r["pass"]]
    if failed:
        print("FAILED:", ", ".join(failed))
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
