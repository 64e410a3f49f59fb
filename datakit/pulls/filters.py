"""What a crawl leaves out, and why: bot authors and licences outside an allow-list. Pure functions.

Unmerged PRs and PRs without a linked issue are decided where the record is made (the first is filtered, the
second kept with the flag `no_linked_issue`, for commit bundles).
"""

from __future__ import annotations

# SPDX ids of permissive licences: the default allow-list. An empty allow-list admits every repository.
DEFAULT_LICENSES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "0BSD", "Unlicense", "Zlib",
                    "MPL-2.0", "PSF-2.0", "Python-2.0", "BSL-1.0", "CC0-1.0")

# Accounts that open PRs mechanically. GitHub Apps end in "[bot]"; older bots are plain user accounts.
BOT_LOGINS = frozenset({
    "dependabot", "dependabot-preview", "renovate", "renovate-bot", "greenkeeper", "greenkeeperio-bot",
    "pre-commit-ci", "github-actions", "snyk-bot", "imgbot", "imgbotapp", "allcontributors", "mergify",
    "codecov", "pyup-bot", "pyup-io", "whitesource-bolt-for-github", "deepsource-autofix", "restyled-io",
    "sourcery-ai", "copilot", "web-flow",
})


def is_bot(login: str | None) -> bool:
    if not login:
        return False
    name = login.lower()
    return name.endswith("[bot]") or name.endswith("-bot") or name.removesuffix("[bot]") in BOT_LOGINS


def license_allowed(spdx_id: str | None, allow: list[str] | tuple[str, ...]) -> bool:
    """True when the allow-list is empty or names the licence (case-insensitive). No licence → not allowed."""
    if not allow:
        return True
    return spdx_id is not None and spdx_id.lower() in {a.lower() for a in allow}
