"""The GitHub API source: a resilient REST + GraphQL client, per-repository checkpointed crawls, PullRecords.

client.py (HTTP, tokens, limits, retries) → crawl.py (what to fetch, checkpoints) → convert.py (GraphQL nodes →
PullRecords, pure) → steps.py (the pipeline step: filters, mirrors, linking, counts).
"""
