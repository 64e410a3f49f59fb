"""Pipeline steps of the `samples` stage: PullRecords + their git mirrors → Agentless samples."""

from __future__ import annotations

import pygit2

from datakit.io.records import as_document
from datakit.pipeline.memory import release_freed_memory
from datakit.pipeline.step import CountingStep
from datakit.samples.agentless import (ROLES, Filtered, Limits, Reject, base_path, build_unit, problem_statement,
                                       statement_strength, target_files)
from datakit.samples.classify import PACKAGES, FileClass, GitAttributes, classify_path
from datakit.samples.structure import StructureRenderer
from datakit.sources.git_mirror import MirrorError, mirror_path, open_mirror, read_blob


_RELEASE_EVERY = 64  # PRs between memory releases (libgit2's object cache dropped, heap trimmed: ~1 % of the CPU)


class AgentlessSamples(CountingStep):
    """For each PullRecord and each role, write a localize and an edit sample, or quarantine / filter the
    (PR, role) unit with its reason.

    Units: `pulls` (read only), `bugfixer` and `testwriter` (read = written + quarantined + filtered each).
    Counters for PRs with a written unit: `problem_source.<source>`, `problem.one_line`, `problem.under_40_chars`."""

    name = "🧩 agentless samples"
    type = "🔨 - BUILDER"

    def __init__(self, mirrors_dir: str, quarantine_dir: str, limits: Limits = Limits(),
                 roles: tuple[str, ...] = ROLES, structure_cache_mb: int = 64):
        super().__init__("samples", quarantine_dir)
        self.mirrors_dir = mirrors_dir
        self.limits = limits
        self.roles = roles
        self.structure_cache_mb = structure_cache_mb
        self._repos: dict[str, tuple[pygit2.Repository, StructureRenderer]] = {}
        self._attributes: dict[object, GitAttributes] = {}  # by .gitattributes blob id

    def _mirror(self, name: str) -> tuple[pygit2.Repository, StructureRenderer]:
        if name not in self._repos:
            repo = open_mirror(mirror_path(self.mirrors_dir, name))
            self._repos[name] = (repo, StructureRenderer(repo, cache_bytes=self.structure_cache_mb * 2**20))
        return self._repos[name]

    def run(self, data, rank: int = 0, world_size: int = 1):
        try:
            for n, doc in enumerate(data, 1):
                if n % _RELEASE_EVERY == 0:
                    self._release_memory()
                pr = doc.metadata
                self.read("pulls")
                with self.track_time():
                    units = self._units(pr)
                wrote = False
                for role, result in units:
                    if isinstance(result, Filtered):
                        self.filtered.put(pr, result.reason, result.detail, rank, role=role)  # with its role
                        self.filter_out(role, result.reason)
                        continue
                    if isinstance(result, Reject):
                        self.reject(role, pr, result.reason, result.detail, rank, role=role)
                        continue
                    self.written(role)
                    wrote = True
                    for sample in result:
                        self.stat_update(f"samples.{sample['kind']}")
                        yield as_document(sample, "text")
                if wrote:  # how strong the statements behind the written samples are
                    problem, source = problem_statement(pr)
                    self.stat_update(f"problem_source.{source}")
                    for flag in statement_strength(problem):
                        self.stat_update(flag)
        finally:
            self.close_outputs()
            for _, renderer in self._repos.values():
                self.stat_update("structure_cache.hits", value=renderer.hits)
                self.stat_update("structure_cache.misses", value=renderer.misses)
            self._repos.clear()

    def _release_memory(self) -> None:
        """libgit2 keeps every object it parses in the repository's cache (up to 256 MiB, process-wide setting):
        small long-lived allocations that grow with the PRs a task has seen and pin the heap between the freed
        prompts (+30 MiB in use, +70 MiB of heap at 2,000 PRs). `free()` drops the cache and the pack handles (they
        reopen on the next lookup); the next PRs re-read only the trees they share with earlier ones."""
        for repo, _ in self._repos.values():
            repo.free()
        # prompts are 100–500 KB strings made and dropped by the thousand: glibc keeps what they freed
        # (+90 MiB of peak RSS at 2,000 PRs without a trim)
        release_freed_memory()

    def _units(self, pr: dict) -> list[tuple[str, list[dict] | Reject]]:
        for role in self.roles:
            self.read(role)
        try:
            repo, renderer = self._mirror(pr["repo"])
            base = repo.get(pr["base_sha"])
            head = repo.get(pr["head_sha"])
            if not isinstance(base, pygit2.Commit) or not isinstance(head, pygit2.Commit):
                raise Reject("missing_commit", f"{pr['base_sha']} or {pr['head_sha']} not in the mirror")
        except (MirrorError, ValueError) as exc:
            return [(role, Reject("missing_mirror", str(exc))) for role in self.roles]
        except Reject as rej:
            return [(role, rej) for role in self.roles]
        attributes = self._gitattributes(repo, base.tree)
        classify = _repo_classifier(base.tree, head.tree, attributes)
        results = []
        for role in self.roles:
            try:
                targets = target_files(pr, role, classify)
                contents = {}
                for f in targets:
                    src = base_path(f)
                    old = read_blob(repo, base.tree, src) if src is not None else None
                    new = read_blob(repo, head.tree, f["path"]) if f["status"] != "deleted" else None
                    contents[f["path"]] = (old, new)
                structure = lambda r=role: renderer.render(base.tree, r == "testwriter", attributes)  # noqa: E731
                results.append((role, build_unit(pr, role, targets, contents, structure, str(base.tree_id),
                                                 self.limits)))
            except Reject as rej:
                results.append((role, rej))
            except Exception as exc:  # a bug or a corrupt object must not lose the record: quarantine it, loudly
                results.append((role, Reject("internal_error", f"{type(exc).__name__}: {exc}")))
        return results

    def _gitattributes(self, repo: pygit2.Repository, tree: pygit2.Tree) -> GitAttributes:
        """The linguist rules of the root `.gitattributes` at base (read from the mirror; parsed once per blob)."""
        entry = tree[".gitattributes"] if ".gitattributes" in tree else None
        if entry is None or entry.type != _BLOB:
            return _NO_ATTRIBUTES
        if entry.id not in self._attributes:
            self._attributes[entry.id] = GitAttributes(repo[entry.id].data.decode("utf-8", "replace"))
        return self._attributes[entry.id]


_BLOB = pygit2.enums.ObjectType.BLOB
_NO_ATTRIBUTES = GitAttributes()


def _repo_classifier(base: pygit2.Tree, head: pygit2.Tree, attributes: GitAttributes):
    """classify_path, plus what only the repository knows: `.gitattributes` linguist-vendored/-generated, and
    `<pkg>/packages/` inside a Python package (an `__init__.py` beside it, at base or, for a new one, at head)."""

    def has_init(directory: str) -> bool:
        path = f"{directory}/__init__.py"
        return path in base or path in head

    def classify(path: str) -> FileClass:
        cls = classify_path(path)
        if cls not in (FileClass.CODE, FileClass.TEST):
            return cls
        if attributes and attributes.vendored(path):
            return FileClass.VENDORED
        segments = path.split("/")[:-1]
        for i in range(1, len(segments)):
            if segments[i] == PACKAGES and has_init("/".join(segments[:i])):
                return FileClass.VENDORED
        return cls

    return classify
