"""The library's one logger ("passl"), with a file handler in the run's output folder on rank 0."""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

__all__ = ["setup_logger", "get_logger"]

_FMT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def get_logger(name: str = "passl") -> logging.Logger:
    return logging.getLogger(name)


def setup_logger(output_dir: Optional[str] = None, rank: int = 0, level: int = logging.INFO) -> logging.Logger:
    """Log to stdout on rank 0 (warnings only elsewhere) and to ``output_dir/train.log`` on rank 0."""
    logger = logging.getLogger("passl")
    logger.setLevel(level if rank == 0 else logging.WARNING)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(logging.Formatter(_FMT, "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(stream)
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "train.log"))
        fh.setFormatter(logging.Formatter(_FMT, "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(fh)
    return logger
