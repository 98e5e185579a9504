"""Train a model from a config.

    python tools/train.py -c configs/convnext/convnext_tiny.yaml [-o key=value ...] [--resume PATH]
    python -m paddle.distributed.launch --gpus 0,1,2,3,4,5,6,7 tools/train.py -c ...

Without --resume, a run continues from OUTPUT_DIR/last.pdparams when it exists (train.auto_resume).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.engine.trainer import Trainer, TrainingDiverged  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("-o", "--override", action="append", default=[], help="key.sub=value (repeatable)")
    parser.add_argument("--resume", default=None, help="checkpoint to resume from (default: auto-resume)")
    args = parser.parse_args(argv)
    try:
        cfg = get_config(args.config, args.override)
        Trainer(cfg, resume=args.resume).train()
    except (ConfigError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
