"""Export a model to a Paddle inference model (and ONNX with --onnx) and verify it against the dygraph model.

    python tools/export_model.py -c CONFIG [-o model.pretrained=PATH] [--weights PATH] --output DIR [--onnx]

Writes DIR/model.json + DIR/model.pdiparams (Paddle 3.x) and refuses (exit 1) when the exported model's logits
differ from the dygraph model's by more than --atol on the same batch. --onnx also converts it with paddle2onnx
to DIR/model.onnx and checks that with ONNX Runtime the same way; a refused ONNX model is not left in DIR.
paddle2onnx and onnxruntime are optional: pip install paddle2onnx onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import QuietFirstCall, input_shape, model_from_config  # noqa: E402

from passl.inference import (  # noqa: E402
    ExportError,
    InferencePredictor,
    OnnxPredictor,
    export_model,
    export_onnx,
    verify_export,
)
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402


def _export_onnx(model, args, shape) -> str:
    """Convert to a temporary file, verify it, and only then put it at DIR/model.onnx."""
    final = os.path.join(args.output, "model.onnx")
    tmp = os.path.join(args.output, f"model.onnx.unverified{os.getpid()}")
    try:
        export_onnx(args.output, tmp, opset=args.opset)
        diff = verify_export(
            model,
            OnnxPredictor(tmp),
            shape,
            args.atol,
            hint="the ONNX model was not written; try another --opset or paddle2onnx/onnxruntime version.",
        )
        os.replace(tmp, final)
    except Exception:
        for path in (tmp, final):  # an older model.onnx no longer matches the model just exported
            if os.path.exists(path):
                os.remove(path)
        raise
    return (
        f"\nexported {final} (opset {args.opset}); verified with ONNX Runtime: max |diff| {diff:.2e} <= {args.atol:g}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[])
    p.add_argument("--weights", default=None)
    p.add_argument("--ema", action="store_true")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--no-onednn", action="store_true", help="verify Paddle Inference without oneDNN")
    p.add_argument("--onnx", action="store_true", help="also write DIR/model.onnx (paddle2onnx) and verify it")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17: LayerNorm stays one op)")
    args = p.parse_args(argv)
    onnx_msg = ""
    try:
        cfg = get_config(args.config, args.override)
        model = model_from_config(cfg, args.weights, use_ema=args.ema or None)
        shape = (4, *input_shape(cfg))
        # Export into a staging folder and move the files into --output only once they are verified, so a refused
        # model never sits where a deployment would pick it up.
        stage = os.path.join(args.output, f".unverified{os.getpid()}")
        try:
            export_model(model, os.path.join(stage, "model"), shape)
            diff = verify_export(
                model, QuietFirstCall(InferencePredictor(stage, onednn=not args.no_onednn)), shape, args.atol
            )
            for name in os.listdir(stage):
                os.replace(os.path.join(stage, name), os.path.join(args.output, name))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        prefix = os.path.join(args.output, "model")
        if args.onnx:
            onnx_msg = _export_onnx(model, args, shape)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        print(f"error: export verification failed: {e}", file=sys.stderr)
        return 1
    print(
        f"exported {prefix}.json + .pdiparams, input [N, {', '.join(map(str, shape[1:]))}]; verified against "
        f"dygraph: max |diff| {diff:.2e} <= {args.atol:g}{onnx_msg}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
