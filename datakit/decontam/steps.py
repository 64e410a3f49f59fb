"""Pipeline step of the `decontam` stage: keep a sample, or quarantine it with the rule that caught it.

Rules run cheapest first and the first that fires decides: repository name / former name, fork metadata, commit
(the sample's base or head is a Verified base commit), mirror (the repository's git history holds a Verified base
commit or a reference root commit), then text overlap with the problem statements, gold patches and test patches.
Repository-level verdicts are computed once per repository. Nothing is deleted: a quarantined sample is kept whole
in `quarantine/`, and its match (rule, instance, score, span) is written to `matches/`.
"""

from __future__ import annotations

from datatrove.data import Document

from datakit.io.records import RecordWriter
from datakit.pipeline.step import CountingStep

SPAN_CHARS = 2000


def sample_text(sample: dict) -> str:
    if sample.get("messages"):
        return "\n".join(m.get("content") or "" for m in sample["messages"])
    return sample.get("text") or ""


class DecontamFilter(CountingStep):
    """Unit `samples`: read = written (kept) + quarantined (per rule)."""

    name = "🧽 decontam"
    type = "🔻 - FILTER"

    def __init__(self, quarantine_dir: str, matches_dir: str, index_path: str | None, mirrors_dir: str | None,
                 threshold: float | None, min_matched: int | None, text_rules: bool = True):
        super().__init__("decontam", quarantine_dir)
        self.matches_dir = matches_dir
        self.index_path = index_path
        self.mirrors_dir = mirrors_dir
        self.threshold = threshold
        self.min_matched = min_matched
        self.text_rules = text_rules

    def _load(self):
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import MirrorRules, load_reference_repos

        index = FingerprintIndex.load(self.index_path) if self.index_path else default_index()
        refs = load_reference_repos()
        mirror_rules = MirrorRules(index.base_commits, refs.get("root_commits", {}))
        return index, mirror_rules

    def _repo_verdict(self, repo_name: str | None, fork_of: str | None, mirror_rules):
        from datakit.decontam.repos import fork_rule, name_rule
        from datakit.sources.git_mirror import MirrorError, mirror_path, open_mirror

        match = name_rule(repo_name) or fork_rule({"fork_of": fork_of} if fork_of else None)
        if match is None and self.mirrors_dir and repo_name and "/" in repo_name:
            path = mirror_path(self.mirrors_dir, repo_name)
            if path.exists():
                try:
                    match = mirror_rules.check(open_mirror(path))
                except MirrorError:
                    match = None
        return match

    def run(self, data, rank: int = 0, world_size: int = 1):
        from datakit.decontam.content import content_matches
        from datakit.decontam.repos import commit_rule

        index, mirror_rules = self._load()
        kwargs = {k: v for k, v in (("threshold", self.threshold), ("min_matched", self.min_matched)) if v is not None}
        repo_verdicts: dict[tuple, object] = {}
        matches = RecordWriter(self.matches_dir, "decontam_match")
        try:
            for doc in data:
                sample = doc.metadata
                meta = sample.get("meta") or {}
                self.read("samples")
                with self.track_time():
                    key = (meta.get("repo"), meta.get("fork_of"))
                    if key not in repo_verdicts:
                        repo_verdicts[key] = self._repo_verdict(*key, mirror_rules)
                    match = repo_verdicts[key] or commit_rule(
                        [s for s in (meta.get("base_sha"), meta.get("head_sha")) if s], index.base_commits)
                    row = None
                    if match is not None:
                        row = {"rule": match.rule, "matched_instance_id": match.matched_instance_id,
                               "matched_repo": match.matched_repo, "score": 1.0, "matched_ngrams": 0,
                               "span_start": None, "span_end": None, "span_text": None, "detail": match.detail}
                    elif self.text_rules:
                        text = sample_text(sample)
                        found = content_matches(text, index, **kwargs)
                        if found:
                            best = max(found, key=lambda m: (m.score, m.matched_ngrams))
                            row = {"rule": f"text_{best.field}", "matched_instance_id": best.instance_id,
                                   "matched_repo": best.repo, "score": float(best.score),
                                   "matched_ngrams": int(best.matched_ngrams), "span_start": int(best.span_start),
                                   "span_end": int(best.span_end),
                                   "span_text": text[best.span_start:best.span_end][:SPAN_CHARS],
                                   "detail": f"{best.matched_ngrams} n-grams of {best.instance_id} {best.field}, "
                                             f"score {best.score:.3f}"}
                if row is None:
                    self.written("samples")
                    yield doc
                    continue
                detail = row.pop("detail")
                self.reject("samples", sample, row["rule"], detail, rank)
                row.update(sample_id=sample["id"], sample_repo=meta.get("repo"))
                matches.write(Document(text="", id=sample["id"], metadata=row), rank)
        finally:
            matches.close()
            self.quarantine.close()
