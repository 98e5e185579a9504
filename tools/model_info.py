"""Print a config's model parameters and MACs: python tools/model_info.py -c CONFIG [--size N] [-o k=v ...]

MACs are counted at the config's evaluation input size (the last resize/crop of data.val.transforms: 28 for the
Fashion-MNIST demo, 224 or 384 for the ImageNet configs) unless --size gives another.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import input_shape  # noqa: E402  (first: it quiets Paddle before paddle is imported)

from passl.modeling import build_model  # noqa: E402
from passl.registry import ConfigError  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.model_info import count_macs, count_params  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-o", "--override", action="append", default=[], help="key.sub=value")
    parser.add_argument("--size", type=int, default=None, help="input resolution (default: the config's eval size)")
    args = parser.parse_args(argv)
    try:
        cfg = get_config(args.config, args.override)
        chans, h, w = input_shape(cfg)
        if args.size is not None:
            if args.size <= 0:
                raise ConfigError(f"--size must be a positive number of pixels, got {args.size}")
            h = w = args.size
        model = build_model(cfg.model)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    macs = count_macs(model, (1, chans, h, w))
    size = str(h) if h == w else f"{h}x{w}"
    print(f"config: {args.config}")
    print(f"params: {count_params(model):,}")
    scale, unit = (1e9, "G") if macs["total"] >= 1e8 else (1e6, "M")  # the demo's MACs are millions
    print(
        f"MACs@{size}: {macs['total'] / scale:.3f} {unit} (conv {macs['conv'] / scale:.3f} {unit}, "
        f"linear {macs['linear'] / scale:.3f} {unit})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
