"""ecgaudit as a user installs it: a wheel built from the tracked files, in a fresh virtual environment elsewhere.

The environment has no pip and no dependencies of its own: a `.pth` line puts the test environment's site-packages
after its own (reused, so no 6 GB of torch is installed again), and the wheel goes in with `--no-deps`. Its
own site-packages comes first on `sys.path`, so `import ecgaudit` finds the wheel's copy, never the checkout
(an editable install's finder lives in a `.pth` file that a plain path line does not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis")


@dataclass(frozen=True)
class Installed:
    src: Path
    """The tracked files the wheel was built from."""
    wheel: Path
    sdist: Path
    direct_wheel: Path
    """The wheel built straight from the tree, beside `wheel`, which was built from the sdist."""
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def ecgaudit(self) -> Path:
        return self.venv / "bin" / "ecgaudit"


def tracked_tree(dest: Path) -> Path:
    """A copy of the files git tracks (what a clean clone holds); without git, the tree less build leftovers."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dest, ignore=_SKIP)
        return dest
    for name in listed.decode().split("\0"):
        if name and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def build(src: Path, out: Path, *args: str) -> None:
    """`python -m build` without isolation: the test environment's setuptools, no index."""
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), *args, str(src)],
                   check=True, capture_output=True)


def fresh_venv(venv: Path) -> Path:
    """A virtual environment with nothing installed that sees the test environment's packages after its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    shared = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(own, "_ecgaudit_test_dependencies.pth").write_text("".join(f"{p}\n" for p in shared))
    return venv


def install(venv: Path, wheel: Path) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    str(wheel)], check=True, capture_output=True)


def build_and_install(work: Path) -> Installed:
    src = tracked_tree(work / "src")
    build(src, work / "dist")  # the sdist, then the wheel built from that sdist (as an index builds it)
    build(src, work / "direct", "--wheel")
    (wheel,) = (work / "dist").glob("*.whl")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    (direct,) = (work / "direct").glob("*.whl")
    venv = fresh_venv(work / "venv")
    install(venv, wheel)
    return Installed(src, wheel, sdist, direct, venv)


def wheel_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def run_installed(installed: Installed, *args: str | Path, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `ecgaudit` from `cwd` (never the checkout), with a clean copy of the environment."""
    merged = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "GITHUB_")) and k != "PYTHONPATH"}
    merged.update(env or {})
    return subprocess.run([str(installed.ecgaudit), *map(str, args)], cwd=cwd, env=merged, capture_output=True,
                          text=True, timeout=timeout)
