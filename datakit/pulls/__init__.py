"""The `pulls` stage's logic: link each PR to the issues it resolves, filter, and assemble PullRecords.

Pure functions (linking, filters, record assembly) used by every source that knows a PR's discussion: the GitHub
API crawl and GH Archive. The code side (commits, files, diff) always comes from a git mirror.
"""
