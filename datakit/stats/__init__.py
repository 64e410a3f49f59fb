"""Corpus statistics of a run (`datakit stats DIR`): per source, role and repository, rows, tokens, lengths,
quarantine and filter reasons, up-sampling and decontamination, as a terminal table, JSON, and one
self-contained HTML report with inline SVG charts.

    collect.py   read a run's stage folders (stats.json, records, token shards, manifests) into frames + figures
    svg.py       the charts: deterministic inline SVG, no plotting library
    report.py    the terminal tables, the JSON figures, the HTML report and its writer
"""

from datakit.stats.collect import RunStats, StatsError, load

__all__ = ["RunStats", "StatsError", "load"]
