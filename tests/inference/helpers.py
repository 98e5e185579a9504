"""Models whose every block matters: random layer scale, norms and biases (the default layer scale 1e-6 makes the
residual blocks invisible in the logits, so a broken block op would pass any logit comparison)."""

import numpy as np
import paddle

from passl.modeling import build_model


def randomize(model, seed=0):
    """gamma and biases ~ N(0, 0.3), norm weights ~ 1 + N(0, 0.3); other weights keep their init. Returns model."""
    rng = np.random.RandomState(seed)
    for name, p in model.named_parameters():
        shape = list(p.shape)
        if name.endswith(("gamma", "bias")):
            value = rng.randn(*shape) * 0.3
        elif len(shape) == 1:  # a LayerNorm weight (every other 1-D parameter is a bias or a gamma)
            value = 1.0 + rng.randn(*shape) * 0.3
        else:
            continue
        p.set_value(paddle.to_tensor(value.astype("float32")))
    return model


def random_model(arch="atto", num_classes=10, seed=0, **architecture):
    """A ConvNeXt (``arch`` or explicit depths/dims) with a ConvNeXtClsHead, randomized."""
    arch_cfg = {"name": "ConvNeXt", **({"arch": arch} if not architecture.get("dims") else {}), **architecture}
    dims = architecture.get("dims") or {"atto": [40, 80, 160, 320]}[arch]
    return randomize(
        build_model(
            {
                "architecture": arch_cfg,
                "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": num_classes},
            }
        ),
        seed,
    )


def without_blocks(model):
    """A context in which every residual block returns its input (the planted bug: block ops skipped)."""
    import contextlib

    from passl.modeling.backbones.convnext import Block

    @contextlib.contextmanager
    def ctx():
        blocks = [m for m in model.sublayers() if isinstance(m, Block)]
        for b in blocks:
            b.forward = lambda x: x
        try:
            yield len(blocks)
        finally:
            for b in blocks:
                del b.forward

    return ctx()
