"""An on-disk cache of GET responses keyed by URL and media type, for conditional requests.

GitHub answers `If-None-Match: <etag>` with 304 Not Modified when nothing changed, and a 304 costs no quota; so a
later crawl re-reads unchanged repository metadata and file lists for free. Entries hold the ETag, the body and the
`Link` header (pagination),
never a request header (the Authorization header is not part of the key or the entry). The key is the URL's path
and query, not its scheme, host or port: the same API moved behind another address (a proxy, a new port) keeps
its cache. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit


class ETagCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, url: str, accept: str) -> Path:
        parts = urlsplit(url)
        resource = parts.path + (f"?{parts.query}" if parts.query else "")
        key = hashlib.sha256(f"{resource}\0{accept}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.json"

    def get(self, url: str, accept: str) -> tuple[str, str, str] | None:
        """(etag, body text, Link header) or None."""
        path = self._path(url, accept)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or torn by a crash: refetch
        return entry["etag"], entry["body"], entry.get("link", "")

    def put(self, url: str, accept: str, etag: str, body: str, link: str = "") -> None:
        path = self._path(url, accept)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"url": url, "accept": accept, "etag": etag, "body": body, "link": link}), encoding="utf-8")
        os.replace(tmp, path)
