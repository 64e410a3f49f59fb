"""Exact and near-duplicate removal (stage `dedup`): content hashes and datatrove's MinHash LSH across
repositories, forks, mirrors and vendored copies. `content` holds the pure parts (what a sample is for dedup, the
normalisation, the keep rule), `steps` the phases, `stages` the stage type."""
