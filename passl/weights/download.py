"""Downloads into a cache folder: atomic, with a progress bar, length- and checksum-verified, switchable off.

Integrity: a body shorter or longer than its Content-Length is an error and leaves nothing; a file with a published
sha256 (``sha256=``) must match it; a file without one is trusted on first use: the first complete download records
its size and sha256 in ``<file>.sha256.json`` beside it, and every later load (and any new download of the same
file) is checked against that record. Partial downloads (``<file>.part-<host>-<pid>``) of dead processes are
removed on the next download into the folder.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
import sys
import time
import urllib.request
from typing import Optional

from passl.registry import ConfigError
from passl.utils.process import pid_alive

__all__ = ["cache_dir", "download", "is_offline", "record_path", "forget", "clean_partial"]

logger = logging.getLogger("passl.weights")

_STALE_SECONDS = 3600  # a partial file from another host counts as abandoned after an hour without writes


def cache_dir() -> str:
    """``$PASSL_WEIGHTS_DIR``, else ``$PASSL_HOME/weights``, else ``~/.cache/passl/weights``."""
    if os.environ.get("PASSL_WEIGHTS_DIR"):
        return os.environ["PASSL_WEIGHTS_DIR"]
    home = os.environ.get("PASSL_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "passl")
    return os.path.join(home, "weights")


def is_offline(offline: Optional[bool] = None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("PASSL_OFFLINE", "0").lower() in ("1", "true", "yes")


def file_sha256(path: str) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_path(path: str) -> str:
    """The trust-on-first-use record of a cached file."""
    return path + ".sha256.json"


def _read_record(path: str) -> Optional[dict]:
    rec = record_path(path)
    if not os.path.isfile(rec):
        return None
    try:
        with open(rec) as f:
            data = json.load(f)
        return {"size": int(data["size"]), "sha256": str(data["sha256"]).lower()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"the checksum record {rec} is unreadable ({type(e).__name__}: {e}); delete it and "
            f"{os.path.basename(path)} and download again"
        ) from None


def _write_record(path: str, url: str, size: int, digest: str) -> None:
    rec = record_path(path)
    tmp = f"{rec}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"url": url, "size": size, "sha256": digest, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}, f)
    os.replace(tmp, rec)


def forget(path: str) -> None:
    """Remove a cached file and its record (a file that turned out not to be what it should be)."""
    for p in (path, record_path(path)):
        if os.path.exists(p):
            os.remove(p)


def clean_partial(folder: str) -> list:
    """Remove partial downloads in ``folder`` left by processes that died: this host's files whose writer is gone,
    and any host's files untouched for an hour. Returns the removed paths."""
    removed = []
    host = socket.gethostname()
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if ".part" not in name:
            continue
        path = os.path.join(folder, name)
        tail = name.rsplit(".part", 1)[1]
        if tail.isdigit():  # the old form <file>.part<pid>
            phost, pid = host, tail
        else:  # <file>.part-<host>-<pid>
            phost, _, pid = tail[1:].rpartition("-")
        if not pid.isdigit():
            continue
        try:
            stale = (phost == host and not pid_alive(int(pid))) or time.time() - os.path.getmtime(path) > _STALE_SECONDS
            if stale and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
        except OSError:
            continue
    if removed:
        logger.info("removed %d abandoned partial download(s): %s", len(removed), ", ".join(removed))
    return removed


def _check_cached(dst: str, sha256: Optional[str]) -> None:
    """A cached file must match its published sha256, else the record of its first download."""
    rec = _read_record(dst)
    expected = sha256.lower() if sha256 else (rec["sha256"] if rec else None)
    if expected is None:  # put there by hand (offline) or by an older version: trust it now, check it from now on
        digest = file_sha256(dst)
        _write_record(dst, "", os.path.getsize(dst), digest)
        logger.info(
            "no checksum for %s: recorded its sha256 %s in %s (trust on first use)", dst, digest, record_path(dst)
        )
        return
    size = os.path.getsize(dst)
    if rec and not sha256 and size != rec["size"]:
        got = f"size {size} B (recorded {rec['size']} B)"
    else:
        got = file_sha256(dst)
        if got == expected:
            return
        got = f"sha256 {got}"
    what = "published" if sha256 else f"recorded at its first download in {record_path(dst)}"
    os.remove(dst)  # not the file that was verified; the record stays, so a new download must match it
    raise ConfigError(
        f"cached {dst} has {got}, but its {what} sha256 is {expected}: it changed since it was verified. It was "
        f"removed; run again to download it anew"
    )


def download(
    url: str,
    filename: Optional[str] = None,
    sha256: Optional[str] = None,
    offline: Optional[bool] = None,
    progress: bool = True,
) -> str:
    """Path of ``url``'s file in the cache, downloading it first when absent; see the module doc for the checks."""
    folder = cache_dir()
    dst = os.path.join(folder, filename or url.rsplit("/", 1)[-1].split("?")[0])
    if os.path.isfile(dst):
        _check_cached(dst, sha256)
        return dst
    if is_offline(offline):
        raise ConfigError(
            f"offline (PASSL_OFFLINE=1) and {os.path.basename(dst)} is not in the cache: download "
            f"{url} yourself and put it at {dst} (or set PASSL_WEIGHTS_DIR)"
        )
    os.makedirs(folder, exist_ok=True)
    clean_partial(folder)
    tmp = f"{dst}.part-{socket.gethostname()}-{os.getpid()}"
    logger.info("downloading %s -> %s", url, dst)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            header = resp.headers.get("Content-Length")
            total = int(header) if header and header.strip().isdigit() else None
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=total, unit="B", unit_scale=True, desc=os.path.basename(dst), file=sys.stderr, mininterval=0.5
                )
            received = 0
            h = hashlib.sha256()
            while True:
                try:
                    chunk = resp.read(1 << 20)
                except http.client.IncompleteRead as e:  # the server closed before Content-Length bytes
                    received += len(e.partial)
                    break
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if total is not None and received != total:
            raise ConfigError(
                f"incomplete download of {url}: received {received} of {total} bytes (Content-Length); nothing was "
                f"kept, try again"
            )
        digest = h.hexdigest()
        if sha256 and digest != sha256.lower():
            raise ConfigError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()} (published), got {digest}; the "
                f"download was removed, try again"
            )
        rec = None if sha256 else _read_record(dst)
        if rec and (digest != rec["sha256"] or received != rec["size"]):
            raise ConfigError(
                f"checksum mismatch for {url}: got sha256 {digest} ({received} B), but its first download recorded "
                f"sha256 {rec['sha256']} ({rec['size']} B) in {record_path(dst)}; the publisher changed the file or "
                f"the download was tampered with. Nothing was kept; if you trust the new file, delete the record and "
                f"run again"
            )
        os.replace(tmp, dst)
        if not sha256 and rec is None:
            _write_record(dst, url, received, digest)
            logger.info(
                "no published checksum for %s: recorded its size (%d B) and sha256 %s in %s (trust on first use; "
                "later loads are checked against it)",
                os.path.basename(dst),
                received,
                digest,
                record_path(dst),
            )
    except (OSError, http.client.HTTPException) as e:
        raise ConfigError(f"could not download {url}: {e}. Download it yourself and put it at {dst}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dst
