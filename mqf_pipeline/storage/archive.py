"""Raw provider records archived gzip-compressed, content-addressed by sha256.

Records are archived per (provider, session) as received (before any coercion), one JSON
object per line; ``raw_hash`` in price_history is the sha256 of that uncompressed payload,
so a bar can always be traced to the exact bytes it came from. Archiving is idempotent: the
same records give the same hash and the same file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
import uuid
from pathlib import Path

import polars as pl


def records_payload(raw: pl.DataFrame) -> bytes:
    """Canonical bytes of raw records: NDJSON with every value rendered as received."""
    return raw.write_ndjson().encode()


def raw_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


class RawArchive:
    """``<root>/<provider>/<YYYY>/<session>-<hash16>.ndjson.gz``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, provider: str, session: dt.date, digest: str) -> Path:
        return self.root / provider / f"{session.year:04d}" / f"{session.isoformat()}-{digest[:16]}.ndjson.gz"

    def store(self, provider: str, session: dt.date, payload: bytes) -> str:
        """Archive ``payload`` (if not already there) and return its sha256."""
        digest = raw_hash(payload)
        path = self.path(provider, session, digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(gzip.compress(payload, compresslevel=3, mtime=0))
            os.replace(tmp, path)
        return digest

    def load(self, provider: str, session: dt.date, digest: str) -> bytes:
        """The archived payload; verifies its hash."""
        path = self.path(provider, session, digest)
        payload = gzip.decompress(path.read_bytes())
        if raw_hash(payload) != digest:
            raise ValueError(f"raw archive {path} is corrupt: hash mismatch")
        return payload
