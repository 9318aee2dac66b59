"""What the repository ships holds on any machine: no file names an absolute path of the machine it was
written on, and the install is pinned by the lock file the Makefile reads."""

import re
import shutil
import subprocess

import pytest

from conftest import REPO

# /work/..., /home/..., /tmp/..., C:\Users\...: a path that exists on one machine only. A path inside a
# URL or after a word character (a/b/tmp/) is not one.
MACHINE_PATH = re.compile(r"(?<![\w.~:/-])(/(?:work|home|root|tmp|Users|Volumes|mnt|scratch|srv|opt|data|private|var/folders)/[^\s`'\")]*"
                          r"|[A-Z]:\\Users\\\S+)")
TEXT_SUFFIXES = {".md", ".json", ".jsonl", ".yaml", ".yml", ".txt", ".py", ".sh", ".toml", ".cfg", ".html"}
# these name temporary paths as examples of what a test builds, or are the patterns themselves
SKIPPED = {"tests"}


def tracked_files():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:  # not a checkout (an sdist): walk the tree
        return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return [REPO / line for line in listed.stdout.splitlines()]


def test_no_shipped_file_names_a_machine_path():
    found = []
    for path in tracked_files():
        relative = path.relative_to(REPO)
        if relative.parts[0] in SKIPPED or path.suffix not in TEXT_SUFFIXES and path.name not in {"Makefile", "run"}:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [f"{relative}:{number}: {m.group(0)}" for m in MACHINE_PATH.finditer(line)]
    assert not found, "\n".join(found)


def test_the_pattern_finds_what_it_is_for():
    assert MACHINE_PATH.search("- `/work/runs/compare/coconut`: coconut")
    assert MACHINE_PATH.search('"exported_from": "/home/ann/runs/x"')
    assert not MACHINE_PATH.search("runs/compare/coconut and https://example.org/tmp/x and a/tmp/b")


def test_the_install_reads_the_lock_file():
    if shutil.which("make") is None:
        pytest.skip("no make")
    dry = subprocess.run(["make", "-n", "-B", "install", "VENV=/nonexistent-venv"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    installs = [line for line in dry.splitlines() if " pip install " in line]
    assert len(installs) == 3 and all("-c constraints.txt" in line for line in installs), dry
    lock = (REPO / "constraints.txt").read_text()
    pins = dict(line.split("==") for line in lock.splitlines() if line and not line.startswith("#"))
    for package in ("transformers", "tokenizers", "safetensors", "numpy", "pytest", "PyYAML"):
        assert package in pins, package
