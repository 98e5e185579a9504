"""Export a model to a Paddle inference model (and ONNX with --onnx) and verify it against the dygraph model.

    python tools/export_model.py -c CONFIG [-o model.pretrained=PATH] [--weights PATH] --output DIR [--onnx]

Writes DIR/model.json + DIR/model.pdiparams (Paddle 3.x) and refuses (exit 1) when the exported model's logits
differ from a float32 CPU forward of the same weights by more than --atol on the same batch. --onnx also converts it
with paddle2onnx to DIR/model.onnx and checks that with ONNX Runtime the same way; a refused ONNX model is not left
in DIR. DIR holds one model: files of an earlier export that this one does not write again (an older model.onnx
when exporting without --onnx, a 2.x model.pdmodel) are removed. paddle2onnx and onnxruntime are optional: pip
install paddle2onnx onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import QuietFirstCall, input_shape, model_from_config, quiet_native  # noqa: E402

from passl.inference import (  # noqa: E402
    ExportError,
    InferencePredictor,
    OnnxPredictor,
    export_model,
    export_onnx,
    install_export,
    verify_export,
)
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.schema import refuse_pretraining_config  # noqa: E402


def _export_onnx(model, args, shape, stage) -> str:
    """Convert the staged Paddle export to a temporary file, verify it, and only then name it STAGE/model.onnx."""
    final = os.path.join(stage, "model.onnx")
    tmp = os.path.join(stage, f"model.onnx.unverified{os.getpid()}")
    try:
        with quiet_native():  # paddle2onnx prints its own progress lines
            export_onnx(stage, tmp, opset=args.opset)
        diff = verify_export(
            model,
            OnnxPredictor(tmp),
            shape,
            args.atol,
            hint="the ONNX model was not written; try another --opset or paddle2onnx/onnxruntime version.",
        )
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return (
        f"\nexported {os.path.join(args.output, 'model.onnx')} (opset {args.opset}); verified with ONNX Runtime: "
        f"max |diff| {diff:.2e} <= {args.atol:g}"
    )


def _output_folder(path: str) -> str:
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--output {path} is a file; pass a folder (it will hold model.json + model.pdiparams)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder {path}: {e.strerror or e}") from None
    return path


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
    onnx_msg, removed, onnx_error = "", [], None
    try:
        _output_folder(args.output)
        cfg = get_config(args.config, args.override)
        refuse_pretraining_config(cfg, "export_model.py")
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
            if args.onnx:
                try:
                    onnx_msg = _export_onnx(model, args, shape, stage)
                except (ExportError, ConfigError) as e:  # the Paddle export is verified: install it without ONNX
                    onnx_error = e
            removed = install_export(stage, args.output)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        if onnx_error is not None:
            raise onnx_error
        prefix = os.path.join(args.output, "model")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        print(f"error: export verification failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read-only or full output folder
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: could not write the export to {args.output}: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    gone = f"\nremoved from {args.output} (an earlier export): {', '.join(removed)}" if removed else ""
    print(
        f"exported {prefix}.json + .pdiparams, input [N, {', '.join(map(str, shape[1:]))}]; verified against dygraph "
        f"(float32, CPU): max |diff| {diff:.2e} <= {args.atol:g}{onnx_msg}{gone}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
