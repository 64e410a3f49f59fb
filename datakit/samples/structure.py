"""Repository structure as Agentless renders it: directories as `name/`, files as `name`, 4 spaces per level.

Only localisation candidates are listed: code files, plus test files for the TestWriter; nothing vendored or
generated (`vendor/`, `<pkg>/packages/` inside a Python package, `.gitattributes` linguist-vendored/-generated).
Directories left empty by that filter are dropped. Git trees are content-addressed, so the rendering of a subtree depends only on
(tree id, depth, what its ancestors make it: test/docs/vendored dir, role): neighbouring commits share most
subtrees, and thousands of PRs of one repository re-render only the directories that changed.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import pygit2

from datakit.samples.classify import PACKAGES, DirContext, FileClass, GitAttributes, classify_name, dir_context

INDENT = "    "


class StructureRenderer:
    """Renders trees of one repository with an LRU cache of rendered subtrees bounded in bytes (0 disables it).

    The root and the top directories change with almost every commit and are large, so they rarely pay back
    their memory: they are rendered but not cached (`min_cache_depth`)."""

    def __init__(self, repo: pygit2.Repository, cache_bytes: int = 256 * 2**20, min_cache_depth: int = 2):
        self.repo = repo
        self.cache_bytes = cache_bytes
        self.min_cache_depth = min_cache_depth
        self._cache: OrderedDict[tuple, str] = OrderedDict()
        self._cached_bytes = 0
        self.hits = 0
        self.misses = 0

    def render(self, tree: pygit2.Tree, include_tests: bool, attributes: GitAttributes | None = None) -> str:
        wanted = (FileClass.CODE, FileClass.TEST) if include_tests else (FileClass.CODE,)
        return self._render(tree.id, 0, DirContext.NONE, wanted, attributes or None, "")

    def _render(self, tree_id: pygit2.Oid, depth: int, context: DirContext, wanted: tuple,
                attributes: GitAttributes | None, prefix: str) -> str:
        cacheable = self.cache_bytes > 0 and depth >= self.min_cache_depth
        # .gitattributes rules match paths: with rules, a subtree's rendering depends on where it is, too
        key = (tree_id, depth, context, wanted) if attributes is None else (tree_id, prefix, context, wanted,
                                                                             attributes.key)
        if cacheable:
            cached = self._cache.get(key)
            if cached is not None:  # a hit costs no object read at all
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
        self.misses += 1
        pad = INDENT * depth
        parts = []
        tree = self.repo[tree_id]
        for entry in tree:
            kind = entry.type
            if kind == _TREE:
                child_context = _dir_context(entry.name, context)
                if child_context is DirContext.VENDORED:
                    continue  # nothing below a vendored dir is a candidate
                if entry.name == PACKAGES and depth and "__init__.py" in tree:
                    continue  # <pkg>/packages/ inside a Python package: bundled libraries
                sub = self._render(entry.id, depth + 1, child_context, wanted, attributes,
                                   f"{prefix}{entry.name}/" if attributes is not None else "")
                if sub:
                    parts.append(f"{pad}{entry.name}/\n{sub}")
            elif kind == _BLOB and _classify(entry.name, context) in wanted:
                if attributes is not None and attributes.vendored(prefix + entry.name):
                    continue
                parts.append(f"{pad}{entry.name}\n")
        text = "".join(parts)
        if cacheable:
            self._cache[key] = text
            self._cached_bytes += len(text)
            while self._cached_bytes > self.cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= len(old)
        return text


_TREE = pygit2.enums.ObjectType.TREE
_BLOB = pygit2.enums.ObjectType.BLOB
# Names repeat across commits and directories: classify each (name, context) once.
_classify = functools.lru_cache(maxsize=1 << 16)(classify_name)
_dir_context = functools.lru_cache(maxsize=1 << 16)(dir_context)
