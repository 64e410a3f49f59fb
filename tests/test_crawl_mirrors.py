"""Mirrors during a crawl (issue 11, item 7): a clone that fails leaves no `<owner>__<name>.git.partial` behind."""

from __future__ import annotations

import pytest

from datakit.sources.git_mirror import MirrorError, RepoSpec, clone_mirror


def test_a_failed_clone_leaves_no_partial_folder(tmp_path):
    (tmp_path / "not-a-repo").mkdir()  # exists, so the clone starts; the fetch then fails
    with pytest.raises(MirrorError, match=r"acme/x: fetch from .*not-a-repo failed"):
        clone_mirror(RepoSpec("acme/x", str(tmp_path / "not-a-repo")), tmp_path / "mirrors")
    assert list((tmp_path / "mirrors").iterdir()) == []
