"""Print a config's model parameters and MACs: python tools/model_info.py -c CONFIG [--size 224] [-o k=v ...]"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.modeling import build_model  # noqa: E402
from passl.utils.config import get_config  # noqa: E402
from passl.utils.model_info import count_macs, count_params  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-o", "--override", action="append", default=[], help="key.sub=value")
    parser.add_argument("--size", type=int, default=224, help="input resolution for the MAC count")
    args = parser.parse_args(argv)
    cfg = get_config(args.config, args.override)
    model = build_model(cfg.model)
    in_chans = cfg.model.architecture.get("in_chans", 3)
    macs = count_macs(model, (1, in_chans, args.size, args.size))
    print(f"config: {args.config}")
    print(f"params: {count_params(model):,}")
    print(
        f"MACs@{args.size}: {macs['total'] / 1e9:.3f} G (conv {macs['conv'] / 1e9:.3f} G, linear {macs['linear'] / 1e9:.3f} G)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
