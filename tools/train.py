"""Train a model from a config.

    python tools/train.py -c configs/convnext/convnext_tiny.yaml [-o key=value ...] [--resume PATH]
    python -m paddle.distributed.launch --gpus 0,1,2,3,4,5,6,7 tools/train.py -c ...

Without --resume, a run continues from OUTPUT_DIR/last.pdparams when it exists (train.auto_resume); a finished
run trains nothing and writes nothing. A resume whose config differs in what the run computes is refused unless
--allow-config-change is given. Ctrl-C or SIGTERM finishes the current step, saves last.pdparams and exits (a second
Ctrl-C aborts without saving); the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

# Paddle warns on import that it has no ccache (it matters only when compiling C++ extensions): not our line.
warnings.filterwarnings("ignore", message="No ccache found")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.engine.checkpoint import CheckpointWriteError  # noqa: E402
from passl.engine.trainer import Trainer, TrainingDiverged, TrainingInterrupted  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("-o", "--override", action="append", default=[], help="key.sub=value (repeatable)")
    parser.add_argument("--resume", default=None, help="checkpoint to resume from (default: auto-resume)")
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though the config differs from the checkpoint's in model, data, optimizer, schedule or "
        "global batch",
    )
    args = parser.parse_args(argv)
    main_rank = int(os.environ.get("PADDLE_TRAINER_ID", "0")) == 0
    try:
        cfg = get_config(args.config, args.override)
        Trainer(cfg, resume=args.resume, allow_config_change=args.allow_config_change).train()
    except (ConfigError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except CheckpointWriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    except TrainingInterrupted as e:
        if main_rank:
            print(str(e), file=sys.stderr)
        return 128 + int(getattr(signal, e.signal_name, signal.SIGTERM)) if e.signal_name.startswith("SIG") else 1
    except KeyboardInterrupt:
        print("aborted by a second Ctrl-C: nothing saved since the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
