"""Downloads into a cache folder: atomic, with a progress bar, checksum-verified, and switchable off."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.request
from typing import Optional

from passl.registry import ConfigError

__all__ = ["cache_dir", "download", "is_offline"]

logger = logging.getLogger("passl.weights")


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


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    filename: Optional[str] = None,
    sha256: Optional[str] = None,
    offline: Optional[bool] = None,
    progress: bool = True,
) -> str:
    """Path of ``url``'s file in the cache, downloading it first when absent."""
    folder = cache_dir()
    dst = os.path.join(folder, filename or url.rsplit("/", 1)[-1].split("?")[0])
    if os.path.isfile(dst):
        return dst
    if is_offline(offline):
        raise ConfigError(
            f"offline (PASSL_OFFLINE=1) and {os.path.basename(dst)} is not in the cache: download "
            f"{url} yourself and put it at {dst} (or set PASSL_WEIGHTS_DIR)"
        )
    os.makedirs(folder, exist_ok=True)
    tmp = f"{dst}.part{os.getpid()}"
    logger.info("downloading %s -> %s", url, dst)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=total or None,
                    unit="B",
                    unit_scale=True,
                    desc=os.path.basename(dst),
                    file=sys.stderr,
                    mininterval=0.5,
                )
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if sha256 and _sha256(tmp) != sha256.lower():
            raise ConfigError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {_sha256(tmp)}; the "
                f"download was removed, try again"
            )
        os.replace(tmp, dst)
    except OSError as e:
        raise ConfigError(f"could not download {url}: {e}. Download it yourself and put it at {dst}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dst
