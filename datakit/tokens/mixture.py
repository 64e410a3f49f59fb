"""Token-budget mixtures: per-source budgets and up-sampling factors, deterministic from a seed.

Kimi-Dev's mid-training mixture is ~50 B tokens of Agentless samples, ~20 B of commit bundles and ~20 B of
synthetic data up-sampled ×4. A recipe says it as
`mixture: {agentless: {tokens: 50e9}, commit_bundles: {tokens: 20e9}, synthetic: {upsample: 4}}`.

- up-sampling by a factor f: every document of the source is emitted floor(f) times, plus once more when
  hash(seed, sample id) < frac(f) — so 0.5 keeps a deterministic half and 4 repeats each document 4 times;
- a token budget B is split evenly over the tasks (B / world_size each); a task admits documents in input order
  while they fit in its share and skips the rest (`over_budget`). Achieved vs requested tokens are reported.
Copies after the first get the sample id `"{id}@{k}"`, so every packed segment names a distinct document.
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


@dataclass(frozen=True)
class SourceMix:
    tokens: float | None = None  # budget over the whole corpus; None = everything there is
    upsample: float = 1.0

    def __post_init__(self):
        if self.upsample < 0 or (self.tokens is not None and self.tokens < 0):
            raise ValueError(f"mixture values must be ≥ 0, got {self}")


def parse_mixture(raw: dict | None) -> dict[str, SourceMix]:
    mix = {}
    for name, spec in (raw or {}).items():
        if not isinstance(spec, dict) or set(spec) - {"tokens", "upsample"}:
            raise ValueError(f"mixture.{name}: expected {{tokens: N, upsample: F}}, got {spec!r}")
        mix[name] = SourceMix(tokens=spec.get("tokens"), upsample=float(spec.get("upsample", 1.0)))
    return mix


def unit_hash(seed: int, key: str) -> float:
    """A deterministic uniform number in [0, 1) for (seed, key)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def copies(factor: float, seed: int, sample_id: str) -> int:
    whole = math.floor(factor)
    return whole + (1 if unit_hash(seed, sample_id) < factor - whole else 0)


@dataclass
class Mixer:
    """Per-task mixture state."""

    mix: dict[str, SourceMix]
    world_size: int = 1
    seed: int = 0
    used: dict[str, int] = field(default_factory=dict)

    def copies(self, source: str, sample_id: str) -> int:
        spec = self.mix.get(source)
        return 1 if spec is None else copies(spec.upsample, self.seed, sample_id)

    def admit(self, source: str, n_tokens: int) -> bool:
        """Count the document against the source's budget; False when it does not fit this task's share."""
        spec = self.mix.get(source)
        used = self.used.get(source, 0)
        if spec is not None and spec.tokens is not None and used + n_tokens > spec.tokens / self.world_size:
            return False
        self.used[source] = used + n_tokens
        return True


def copy_id(sample_id: str, k: int) -> str:
    return sample_id if k == 0 else f"{sample_id}@{k}"
