"""Token-budget mixtures: per-source budgets and up-sampling factors, deterministic from a seed.

Kimi-Dev's mid-training mixture is ~50 B tokens of Agentless samples, ~20 B of commit bundles and ~20 B of
synthetic data up-sampled ×4. A recipe says it as
`mixture: {agentless: {tokens: 50e9}, commit_bundles: {tokens: 20e9}, synthetic: {tokens: 20e9, upsample: 4}}`,
or as fractions of the tokens stage's `target_tokens` after up-sampling
(`{agentless: {fraction: 0.333}, commit_bundles: {fraction: 0.133}, synthetic: {fraction: 0.533, upsample: 4}}`
with `target_tokens: 150e9`: synthetic gets 0.533 × 150 B / 4 = 20 B unique).

- a budget counts **unique** tokens, before up-sampling (20 B × 4 = 80 B in the stream, 20 B distinct);
- up-sampling by a factor f: every document of the source is emitted floor(f) times, plus once more when
  hash(seed, sample id) < frac(f) — so 0.5 keeps a deterministic half and 4 repeats each document 4 times. The
  factor defaults to `DEFAULT_UPSAMPLE` (synthetic ×4, as Kimi-Dev), else 1;
- a token budget B is split evenly over the tasks (B / world_size each); a task admits documents in input order
  while they fit in its share and skips the rest (`over_budget`). Achieved vs requested tokens are reported.
Copies are not emitted here: the packer spreads them over the token stream (`datakit.tokens.packing`). Copy k ≥ 1
is named `"{id}@{k}"` and carries its repeat index, so every packed segment names a distinct document.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

# Which mixture source a Sample belongs to, by its kind.
SOURCE_BY_KIND = {
    "localize": "agentless",
    "edit": "agentless",
    "commit_bundle": "commit_bundles",
    "synthetic": "synthetic",
    "sft": "sft",
}


DEFAULT_UPSAMPLE = {"synthetic": 4.0}  # Kimi-Dev: synthetic reasoning / agent data ×4


@dataclass(frozen=True)
class SourceMix:
    tokens: float | None = None  # budget of unique tokens over the whole corpus; None = everything there is
    upsample: float = 1.0

    def __post_init__(self):
        if self.upsample < 0 or (self.tokens is not None and self.tokens < 0):
            raise ValueError(f"mixture values must be ≥ 0, got {self}")


def parse_mixture(raw: dict | None, target_tokens: float = 0) -> dict[str, SourceMix]:
    """The recipe's mixture, every budget resolved to unique tokens (`fraction` needs `target_tokens`)."""
    mix = {}
    for name, spec in (raw or {}).items():
        if not isinstance(spec, dict) or set(spec) - {"tokens", "upsample", "fraction"} or (
                "tokens" in spec and "fraction" in spec):
            raise ValueError(f"mixture.{name}: expected {{tokens: N | fraction: F, upsample: F}}, got {spec!r}")
        upsample = float(spec.get("upsample", DEFAULT_UPSAMPLE.get(name, 1.0)))
        tokens = float(spec["tokens"]) if spec.get("tokens") is not None else None
        if "fraction" in spec:
            if not target_tokens or target_tokens <= 0:
                raise ValueError(f"mixture.{name}.fraction needs the tokens stage's target_tokens")
            # a fraction of the stream after up-sampling; the budget counts the unique tokens behind it
            tokens = float(spec["fraction"]) * target_tokens / upsample if upsample else 0.0
        mix[name] = SourceMix(tokens=tokens, upsample=upsample)
    return mix


def effective(mix: dict[str, SourceMix], source: str) -> SourceMix:
    """A source's mixture entry, or its default (every token, DEFAULT_UPSAMPLE's factor) when the recipe has none."""
    return mix.get(source) or SourceMix(upsample=DEFAULT_UPSAMPLE.get(source, 1.0))


def unit_hash(seed: int, key: str) -> float:
    """A deterministic uniform number in [0, 1) for (seed, key)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def copies(factor: float, seed: int, sample_id: str) -> int:
    whole = math.floor(factor)
    if factor == whole:  # unit_hash < 0 never holds: no hash to compute (a sha256 per document)
        return whole
    return whole + (1 if unit_hash(seed, sample_id) < factor - whole else 0)


@dataclass
class Mixer:
    """Per-task mixture state."""

    mix: dict[str, SourceMix]
    world_size: int = 1
    seed: int = 0
    used: dict[str, int] = field(default_factory=dict)
    _specs: dict[str, SourceMix] = field(default_factory=dict, repr=False)  # `effective` per source, once

    def _spec(self, source: str) -> SourceMix:
        spec = self._specs.get(source)
        if spec is None:
            spec = self._specs[source] = effective(self.mix, source)
        return spec

    def copies(self, source: str, sample_id: str) -> int:
        return copies(self._spec(source).upsample, self.seed, sample_id)

    def admit(self, source: str, n_tokens: int) -> bool:
        """Count the document's unique tokens against the source's budget; False when it does not fit this task's
        share."""
        spec = self._spec(source)
        used = self.used.get(source, 0)
        if spec.tokens is not None and used + n_tokens > spec.tokens / self.world_size:
            return False
        self.used[source] = used + n_tokens
        return True


def copy_id(sample_id: str, k: int) -> str:
    return sample_id if k == 0 else f"{sample_id}@{k}"


@dataclass(frozen=True)
class Validation:
    """The held-out validation split, by repository (the tokens stage's `validation` option).

    A repository goes to validation when it is listed in `repos` or when hash(seed, repository) < `fraction`: a
    pure function of the name, so the split is the same whatever the task count or the input order, and every
    document of a repository lands on the same side. Names compare in lower case (GitHub's are case-insensitive,
    and sources spell them differently). The key is the sample's own repository, never its fork network's root:
    `fork_of` is known to some sources and not others, so keying by it could put one repository on both sides
    (a fork and its parent may therefore land apart). Samples without a repository (synthetic) go to
    `without_repo` (train by default). Validation documents skip the mixture: never up-sampled, never budgeted,
    each packed once."""

    fraction: float = 0.0
    seed: int = 0
    repos: frozenset[str] = frozenset()
    without_repo: str = "train"

    @property
    def enabled(self) -> bool:
        return self.fraction > 0 or bool(self.repos) or self.without_repo == "valid"

    def holds(self, repo: str | None) -> bool:
        """Whether the documents of this repository (`repo_of`) are validation documents."""
        if not repo:
            return self.without_repo == "valid"
        return repo in self.repos or unit_hash(self.seed, f"repo:{repo}") < self.fraction


VALIDATION_KEYS = ("fraction", "seed", "repos", "without_repo")


def parse_validation(raw: dict | None) -> Validation:
    """The recipe's `validation: {fraction: 0.01, seed: 0, repos: [owner/name, …], without_repo: train|valid}`."""
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - set(VALIDATION_KEYS):
        raise ValueError(f"validation: expected keys among {', '.join(VALIDATION_KEYS)}, got {raw!r}")
    fraction = raw.get("fraction", 0.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"validation.fraction: a share of repositories in [0, 1), got {fraction!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"validation.seed: an integer, got {seed!r}")
    repos = raw.get("repos", [])
    if not isinstance(repos, list) or not all(isinstance(r, str) and r.count("/") == 1 for r in repos):
        raise ValueError(f"validation.repos: a list of owner/name strings, got {repos!r}")
    without = raw.get("without_repo", "train")
    if without not in ("train", "valid"):
        raise ValueError(f"validation.without_repo: train or valid (samples with no repository), got {without!r}")
    return Validation(float(fraction), seed, frozenset(r.lower() for r in repos), without)


def repo_of(sample: dict) -> str | None:
    """A Sample's repository, lower case: `meta.repo`, else `source.repo`; None for samples from no repository
    (synthetic)."""
    name = (sample.get("meta") or {}).get("repo") or (sample.get("source") or {}).get("repo")
    return name.lower() if name else None
