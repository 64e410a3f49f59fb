"""Repository structure as Agentless renders it: directories as `name/`, files as `name`, 4 spaces per level.

Only localisation candidates are listed: code files, plus test files for the TestWriter. Directories left empty
by that filter are dropped. Git trees are content-addressed, so the rendering of a subtree depends only on
(tree id, depth, what its ancestors make it: test/docs/vendored dir, role): neighbouring commits share most
subtrees, and thousands of PRs of one repository re-render only the directories that changed.
"""

from __future__ import annotations

from collections import OrderedDict

import pygit2

from datakit.samples.classify import DirContext, FileClass, classify_name, dir_context

INDENT = "    "


class StructureRenderer:
    """Renders trees of one repository; keeps an LRU cache of rendered subtrees (`cache_size=0` disables it)."""

    def __init__(self, repo: pygit2.Repository, cache_size: int = 200_000):
        self.repo = repo
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def render(self, tree: pygit2.Tree, include_tests: bool) -> str:
        wanted = (FileClass.CODE, FileClass.TEST) if include_tests else (FileClass.CODE,)
        return self._render(tree, 0, DirContext.NONE, wanted)

    def _render(self, tree: pygit2.Tree, depth: int, context: DirContext, wanted: tuple) -> str:
        key = (tree.id, depth, context, wanted)
        if self.cache_size:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
        self.misses += 1
        pad = INDENT * depth
        parts = []
        for entry in tree:
            if entry.type == pygit2.enums.ObjectType.TREE:
                child_context = dir_context(entry.name, context)
                if child_context is DirContext.VENDORED:
                    continue  # nothing below a vendored dir is a candidate
                sub = self._render(self.repo[entry.id], depth + 1, child_context, wanted)
                if sub:
                    parts.append(f"{pad}{entry.name}/\n{sub}")
            elif entry.type == pygit2.enums.ObjectType.BLOB and classify_name(entry.name, context) in wanted:
                parts.append(f"{pad}{entry.name}\n")
        text = "".join(parts)
        if self.cache_size:
            self._cache[key] = text
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return text
