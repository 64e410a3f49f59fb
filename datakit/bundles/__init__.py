"""Commit bundles: one curated document per merged PR (issues, commits with verified diffs, reviews)."""
