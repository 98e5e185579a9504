"""Export a model to a Paddle inference model and verify it against the dygraph model.

    python tools/export_model.py -c CONFIG [-o model.pretrained=PATH] [--weights PATH] --output DIR

Writes DIR/model.json + DIR/model.pdiparams (Paddle 3.x) and refuses (exit 1) when the exported model's logits
differ from the dygraph model's by more than --atol on the same batch.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import input_shape, model_from_config  # noqa: E402

from passl.inference import ExportMismatch, InferencePredictor, export_model, verify_export  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[])
    p.add_argument("--weights", default=None)
    p.add_argument("--ema", action="store_true")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--no-onednn", action="store_true", help="verify Paddle Inference without oneDNN")
    args = p.parse_args(argv)
    try:
        cfg = get_config(args.config, args.override)
        model = model_from_config(cfg, args.weights, use_ema=args.ema or None)
        shape = (4, *input_shape(cfg))
        prefix = export_model(model, os.path.join(args.output, "model"), shape)
        diff = verify_export(model, InferencePredictor(args.output, onednn=not args.no_onednn), shape, args.atol)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportMismatch as e:
        print(f"error: export verification failed: {e}", file=sys.stderr)
        return 1
    print(
        f"exported {prefix}.json + .pdiparams, input [N, {', '.join(map(str, shape[1:]))}]; verified against "
        f"dygraph: max |diff| {diff:.2e} <= {args.atol:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
