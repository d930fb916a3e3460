"""lookup_plugins/tree_digest.py: the content digest that names a product release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def lookup():
    lookup_loader.add_directory(str(REPO_ROOT / "lookup_plugins"))
    plugin = lookup_loader.get("tree_digest")
    assert plugin is not None
    return plugin


def make_tree(root: Path) -> Path:
    (root / "public").mkdir(parents=True)
    (root / "public" / "index.php").write_text("<?php echo 1;\n")
    (root / "bin").mkdir()
    (root / "bin" / "run").write_text("#!/bin/sh\n")
    (root / "bin" / "run").chmod(0o755)
    (root / "link").symlink_to("public/index.php")
    return root


def digest(lookup, path: Path, **kw) -> str:
    return lookup.run([str(path)], variables={}, **kw)[0]


def test_same_content_same_digest_regardless_of_time_and_mode(lookup, tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    os.utime(b / "public" / "index.php", (1, 1))
    (b / "public" / "index.php").chmod(0o600)  # only the executable bit counts
    assert digest(lookup, a) == digest(lookup, b)
    assert len(digest(lookup, a)) == 64


@pytest.mark.parametrize("change", ["content", "name", "exec", "link", "new_dir"])
def test_any_content_change_changes_the_digest(lookup, tmp_path: Path, change: str) -> None:
    tree = make_tree(tmp_path / "t")
    before = digest(lookup, tree)
    if change == "content":
        (tree / "public" / "index.php").write_text("<?php echo 2;\n")
    elif change == "name":
        (tree / "public" / "index.php").rename(tree / "public" / "main.php")
    elif change == "exec":
        (tree / "bin" / "run").chmod(0o644)
    elif change == "link":
        (tree / "link").unlink()
        (tree / "link").symlink_to("bin/run")
    else:
        (tree / "empty").mkdir()
    assert digest(lookup, tree) != before


def test_git_dir_is_excluded_by_default(lookup, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t")
    before = digest(lookup, tree)
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert digest(lookup, tree) == before
    assert digest(lookup, tree, exclude=[]) != before


def test_length_and_several_terms(lookup, tmp_path: Path) -> None:
    a = make_tree(tmp_path / "a")
    full = digest(lookup, a)
    assert lookup.run([str(a), str(a)], variables={}, length=12) == [full[:12], full[:12]]


def test_missing_directory_is_an_error_naming_it(lookup, tmp_path: Path) -> None:
    with pytest.raises(AnsibleLookupError, match="nowhere"):
        digest(lookup, tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnsibleLookupError, match="not a directory"):
        digest(lookup, tmp_path / "file")
