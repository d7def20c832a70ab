"""Fetch an official file, check its MD5 or SHA-256, and only then give it its final name."""
from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.request
from pathlib import Path

from ..errors import UserError
from ..fsutil import atomic_path
from .catalog import Download

CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    return digest_of(path, "md5")


def digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(found: str, expected: str) -> bool:
    """The whole digest, or its first digits where only those are published (never an empty expectation)."""
    return bool(expected) and found.startswith(expected.lower())


def fetch(download: Download, dest_dir: Path, timeout: float = 30.0) -> Path:
    """Download to a temporary file in `dest_dir`, verify the checksum, rename. Tries each mirror in turn."""
    dest = dest_dir / download.filename
    algorithm, expected = download.checksum
    if dest.exists() and matches(digest_of(dest, algorithm), expected):
        return dest
    failures = []
    for url in download.urls:
        try:
            with atomic_path(dest) as tmp:
                digest = hashlib.new(algorithm)
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        digest.update(block)
                        out.write(block)
                if not matches(digest.hexdigest(), expected):
                    raise ChecksumError(f"{algorithm.upper().replace('SHA', 'SHA-')} {digest.hexdigest()}, "
                                        f"expected {expected}{'...' if len(expected) < digest.digest_size * 2 else ''}")
            return dest
        except (OSError, ChecksumError) as exc:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {exc}")
    raise DownloadFailed("; ".join(failures))


def extract(archive: Path, dest_dir: Path) -> None:
    """Unpack a tar.gz into `dest_dir` (members are checked to stay inside it)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest_dir, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{archive}: cannot unpack the archive ({exc}); delete it and try again") from exc


class ChecksumError(Exception):
    pass


class DownloadFailed(Exception):
    pass


def download_source(source, cache_dir: Path) -> Path:
    """Download and unpack every file of a source into cache_dir/<subdir>; return that folder."""
    target = cache_dir / source.subdir
    for item in source.downloads:
        where = cache_dir if item.extract else target
        where.mkdir(parents=True, exist_ok=True)
        path = fetch(item, where)
        if item.extract:
            extract(path, cache_dir)
            os.remove(path)  # the unpacked files are what we read; keep the cache small
    return target
