"""Where a dygraph training step's time goes: ``python -m passl.ops.profile_step [-c CONFIG] [--batch N]``.

One step as ``passl.engine.trainer`` runs it (forward, the config's loss, backward, ``optimizer.step``,
``clear_grad``) on random inputs of the config's size: the phases timed over ``--steps`` steps, then paddle.profiler's
operator table (backward nodes and Paddle ops; the custom kernels' forwards are inside the forward phase) and the
forward time per layer type (inclusive, from forward hooks). Threads: ``OMP_NUM_THREADS`` (the demo: 1).
"""

from __future__ import annotations

import argparse
import collections
import time

import paddle

from passl.utils.memory import reuse_freed_memory

__all__ = ["main"]


def _build(config: str, batch: int):
    from passl.modeling import build_model
    from passl.modeling.heads.losses import SoftTargetCrossEntropy
    from passl.solver.lr import build_lr_scheduler
    from passl.solver.optim import build_optimizer
    from passl.utils.config import get_config

    cfg = get_config(config)
    model = build_model(cfg.model)
    model.train()
    opt = build_optimizer(
        cfg.optimizer, model, build_lr_scheduler(cfg.lr_scheduler, cfg.optimizer.lr, int(cfg.train.epochs), 100)
    )
    size = int(cfg.get("export", {}).get("image_size", 224))
    chans = int(cfg.model.architecture.get("in_chans", 3))
    x = paddle.randn([batch, chans, size, size])
    y = paddle.randint(0, int(cfg.model.head.num_classes), [batch])
    if isinstance(getattr(model, "loss_fn", None), SoftTargetCrossEntropy):  # mixup recipes train on soft targets
        y = paddle.nn.functional.one_hot(y, int(cfg.model.head.num_classes))
    return model, opt, x, y


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", default="configs/demo/fashion_mnist_convnext.yaml")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    model, opt, x, y = _build(args.config, args.batch)
    reuse_freed_memory()  # as the trainer does on CPU
    phases = collections.defaultdict(float)

    def step(timed: bool = False) -> None:
        t0 = time.perf_counter()
        loss = model.compute_loss(model(x).astype("float32"), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        opt.clear_grad()
        t4 = time.perf_counter()
        if timed:
            for name, dt in zip(
                ("forward", "backward", "optimizer", "clear_grad"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
            ):
                phases[name] += dt

    for _ in range(3):
        step()
    for _ in range(args.steps):
        step(True)
    total = sum(phases.values())
    print(f"step {total / args.steps * 1e3:.1f} ms (mean of {args.steps})")
    for name, v in phases.items():
        print(f"  {name:10s} {v / args.steps * 1e3:8.2f} ms  {100 * v / total:5.1f}%")

    import paddle.profiler as profiler

    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], scheduler=(2, 12), on_trace_ready=lambda p: None)
    prof.start()
    for _ in range(14):
        step()
        prof.step()
    prof.stop()
    prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False, time_unit="ms")

    spent, calls, started = collections.defaultdict(float), collections.Counter(), {}

    def pre(layer, inputs):  # forward hooks must return None (a value would replace the inputs or the output)
        started[id(layer)] = time.perf_counter()

    def post(layer, inputs, output):
        spent[type(layer).__name__] += time.perf_counter() - started[id(layer)]
        calls[type(layer).__name__] += 1

    for layer in model.sublayers():
        layer.register_forward_pre_hook(pre)
        layer.register_forward_post_hook(post)
    for _ in range(args.steps):
        step()
    print("forward per layer type (inclusive of sublayers), per step:")
    for name in sorted(spent, key=spent.get, reverse=True):
        print(f"  {name:20s} {spent[name] / args.steps * 1e3:8.2f} ms  {calls[name] // args.steps:3d} calls")


if __name__ == "__main__":
    main()
