"""Run by test_dist_resume.py under paddle.distributed.launch: each rank gets its own output folder (as machines
without shared storage would); the trainer must refuse when only some ranks find a checkpoint.

Usage: _dist_resume.py BASE_DIR"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from passl.engine.trainer import Trainer  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from tests.engine._dist_train import make_cfg  # noqa: E402

if __name__ == "__main__":
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    try:
        Trainer(make_cfg(os.path.join(sys.argv[1], f"rank{rank}"), 4))
    except ConfigError as e:
        with open(os.path.join(sys.argv[1], f"error{rank}.txt"), "w") as f:
            f.write(str(e))
        sys.exit(3)
