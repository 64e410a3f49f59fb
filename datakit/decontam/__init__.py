"""Decontamination against SWE-bench (Verified by default): repository-level rules and text overlap.

Text overlap: `reference` loads the instances (local files or the Hugging Face hub), `ngrams` fingerprints text
as hashed word n-grams (numpy, vectorised), `index` holds the compact fingerprint index (hashes only, shipped
in ``datakit/decontam/data/``), and `content` finds which reference items a text quotes.
"""
