"""Mixed precision in the trainer, tested as far as a CPU allows.

Paddle 3.2 switches AMP off on CPU in Python: ``auto_cast``, ``decorate`` and ``GradScaler`` check the tracer's
place and do nothing there; the CPU build also has no float16/bfloat16 conv, matmul or AdamW kernels. So:

- on plain CPU, every amp setting must still build and train (in float32) and resume;
- with ``pretend_accelerator`` those place checks see an accelerator: ``GradScaler`` really scales, unscales,
  skips inf steps and updates its scale, and ``decorate(level="O2")`` really casts the weights. Forward and backward
  still compute in float32 (Paddle's C++ autocast leaves CPU ops alone), which makes the loss-scaled update
  comparable bit for bit with a float32 run. O2 cannot take an optimizer step on CPU (no float16/bfloat16 AdamW
  kernel), so its master weights are created the way the first step creates them, and checked through a resume.
"""

import sys

import numpy as np
import paddle
import pytest

from passl.engine.checkpoint import optimizer_state, save_atomic
from passl.engine.hooks import Hook, default_hooks
from passl.engine.trainer import Trainer
from passl.utils.config import AttrDict
from tests.engine.helpers import tiny_cfg

pytestmark = pytest.mark.filterwarnings(  # Paddle's "AMP does nothing on CPU" warnings, expected here
    "ignore:amp_guard can only be enabled", "ignore:AmpScaler can only be enabled"
)

_AC = sys.modules["paddle.amp.auto_cast"]  # the modules, not the functions paddle.amp re-exports
_GS = sys.modules["paddle.amp.grad_scaler"]


class _AcceleratorPlace:
    def __init__(self, real):
        self._real = real

    def is_gpu_place(self):
        return False  # a GPU place would query CUDA capabilities

    def is_xpu_place(self):
        return False

    def is_custom_place(self):
        return True

    def __getattr__(self, name):
        return getattr(self._real, name)


class _AcceleratorTracer:
    """The real tracer (attribute reads and writes pass through) reporting an accelerator place."""

    def __init__(self, real):
        object.__setattr__(self, "_real", real)

    @property
    def _expected_place(self):
        return _AcceleratorPlace(self._real._expected_place)

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __setattr__(self, name, value):
        setattr(self._real, name, value)


@pytest.fixture
def pretend_accelerator(monkeypatch):
    for mod in (_AC, _GS):
        if not hasattr(mod, "_dygraph_tracer"):
            pytest.skip(f"{mod.__name__} has no _dygraph_tracer in Paddle {paddle.__version__}: cannot pretend")
        real = mod._dygraph_tracer
        monkeypatch.setattr(mod, "_dygraph_tracer", lambda real=real: _AcceleratorTracer(real()))
    monkeypatch.setattr(_AC, "_is_custom_device_bfloat16_supported", lambda: True)


def _cfg(out, optimizer="AdamW", amp=None, **train):
    """Deterministic tiny run: no augmentation, mixup or drop path, so two runs see identical numbers."""
    cfg = tiny_cfg(out, samples=16, **train)
    cfg.model.architecture.drop_path_rate = 0.0
    cfg.data.mixup = None
    cfg.model.loss = {"name": "CrossEntropyLoss"}
    cfg.data.train.transforms = [{"name": "Normalize"}]
    cfg.data.val = None
    if optimizer != "AdamW":
        cfg.optimizer = AttrDict(name=optimizer, lr=0.05, weight_decay=1.0e-4)
    cfg.train.amp = amp or {"enable": False}
    return cfg


def _params(model):
    return {k: v.astype("float32").numpy() for k, v in model.state_dict().items()}


class _Snapshots(Hook):
    def __init__(self):
        self.params = []

    def after_step(self, trainer):
        self.params.append(_params(trainer.model_without_ddp))


def _loss_values(out):
    import json

    return [json.loads(x)["loss"] for x in open(out / "metrics.jsonl") if '"train"' in x]


# ------------------------------------------------------------------------------------------------ plain CPU


@pytest.mark.parametrize("dtype,level", [("float16", "O1"), ("bfloat16", "O1"), ("float16", "O2"), ("bfloat16", "O2")])
def test_every_amp_setting_trains_and_resumes_on_cpu(tmp_path, dtype, level):
    amp = {"enable": True, "dtype": dtype, "level": level}
    cfg = _cfg(tmp_path, amp=amp, epochs=3)
    cfg.data.train.dataset.num_samples = 8  # 2 batches, seen 3 times: the loss must fall
    t = Trainer(cfg)
    assert (t.scaler is not None) == (dtype == "float16")  # loss scaling for float16 only
    assert all(p.dtype == paddle.float32 for p in t.model_without_ddp.parameters())  # decorate: no-op on CPU
    t.train()
    losses = _loss_values(tmp_path)
    assert len(losses) == 6 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert "trains in float32" in open(tmp_path / "train.log").read()
    ckpt = paddle.load(str(tmp_path / "last.pdparams"))
    assert ckpt["scaler"] == ({} if dtype == "float16" else None)  # Paddle's disabled scaler has an empty state
    again = Trainer(cfg)  # auto-resume with the same amp settings
    assert again.state["step"] == 6


def test_unknown_amp_key_is_an_error(tmp_path):
    from passl.registry import ConfigError

    with pytest.raises(ConfigError, match="train.amp has unknown key\\(s\\) dytpe"):
        Trainer(_cfg(tmp_path, amp={"enable": True, "dytpe": "bfloat16"}))


# --------------------------------------------------------------------------- float16 loss scaling (GradScaler)


def test_loss_scaled_update_with_accumulation_and_clip_equals_float32(tmp_path, pretend_accelerator):
    """Scaled backward over 2 micro-batches, unscale, clip, Momentum step: the same update as float32. The clip
    threshold lies between the true gradient norm (about 6) and the scaled one (about 65536 x 6): if the optimizer
    stepped on still-scaled gradients, or clipped before unscaling, the clip would act and the update would differ
    (a clip that acts makes the update blind to the scale, so the threshold must not act on true gradients)."""
    runs = {}
    for name, amp in {"fp32": None, "fp16": {"enable": True, "dtype": "float16", "level": "O1"}}.items():
        cfg = _cfg(tmp_path / name, optimizer="Momentum", amp=amp, max_steps=2, accum_steps=2)
        cfg.optimizer.clip_grad = 50.0
        t = Trainer(cfg)
        start = _params(t.model_without_ddp)
        t.train()
        runs[name] = _params(t.model_without_ddp)
        if name == "fp16":
            assert t.scaler.is_enable() and t.scaler._scale.item() == 65536.0
            assert 1.0 < t.optimizer.grad_norm.item() < 50.0  # the clip measured unscaled gradients
    moved = max(np.abs(runs["fp32"][k] - start[k]).max() for k in start)
    assert moved > 1e-4
    for k in start:
        np.testing.assert_allclose(runs["fp16"][k], runs["fp32"][k], rtol=1e-6, atol=1e-7, err_msg=k)


def _poison(trainer, step):
    """Multiply the loss of optimizer step ``step`` (1-based) by 1e37: finite, but inf once loss-scaled."""
    original = trainer.model_without_ddp.compute_loss

    def loss_fn(logits, target):
        loss = original(logits, target)
        return loss * 1e37 if trainer.state["step"] + 1 == step else loss

    trainer.model_without_ddp.compute_loss = loss_fn


def test_inf_gradients_skip_the_step_and_halve_the_scale(tmp_path, pretend_accelerator):
    cfg = _cfg(tmp_path, amp={"enable": True, "dtype": "float16", "level": "O1"}, max_steps=3)
    cfg.optimizer.clip_grad = 1.0
    snaps = _Snapshots()
    t = Trainer(cfg, hooks=default_hooks(dict(cfg.train)) + [snaps])
    start = _params(t.model_without_ddp)
    _poison(t, step=2)
    t.train()
    first, skipped, third = snaps.params
    assert any(np.abs(first[k] - start[k]).max() > 0 for k in start)
    for k in first:
        np.testing.assert_array_equal(skipped[k], first[k], err_msg=k)  # step 2: no update at all
    assert all(np.isfinite(v).all() for v in third.values())
    assert any(np.abs(third[k] - skipped[k]).max() > 0 for k in first)  # step 3 updates again
    assert t.scaler._scale.item() == 32768.0


def test_scaler_state_is_saved_and_restored_on_resume(tmp_path, pretend_accelerator):
    amp = {"enable": True, "dtype": "float16", "level": "O1", "init_loss_scaling": 1024.0}
    t = Trainer(_cfg(tmp_path, amp=amp, max_steps=3))
    _poison(t, step=1)
    t.train()  # step 1 skipped (scale 1024 -> 512), steps 2 and 3 good (incr_count 2)
    saved = paddle.load(str(tmp_path / "last.pdparams"))["scaler"]
    assert float(saved["scale"][0]) == 512.0 and saved["incr_count"] == 2

    resumed = Trainer(_cfg(tmp_path, amp=amp, max_steps=4))  # auto-resume from last.pdparams
    assert resumed.state["step"] == 3
    state = resumed.scaler.state_dict()
    assert float(state["scale"][0]) == 512.0 and state["incr_count"] == 2 and state["decr_count"] == 0
    resumed.train()
    assert resumed.scaler._scale.item() == 512.0 and resumed.scaler.state_dict()["incr_count"] == 3


# ------------------------------------------------------------------------------------- O2: decorate, master weights


def _create_step_state(trainer):
    """Create the optimizer's master weights and moments as its first step does (restoring any loaded state); the
    step's kernel itself does not exist for float16/bfloat16 on CPU."""
    params = list(trainer.model_without_ddp.parameters())
    trainer.optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)


def _scramble_step_state(trainer, seed):
    """Give master weights and moments distinct values that a resume must bring back."""
    opt = trainer.optimizer
    rng = np.random.RandomState(seed)
    for master in opt._master_weights.values():  # float32 values that float16/bfloat16 cannot hold
        noise = rng.uniform(1e-5, 2e-5, master.shape).astype("float32")
        paddle.assign(paddle.to_tensor(master.numpy() + noise), output=master)
    for accs in opt._accumulators.values():
        for acc in accs.values():
            paddle.assign(paddle.to_tensor(rng.uniform(0.1, 1.0, acc.shape).astype("float32")), output=acc)


def _opt_arrays(trainer):
    state = optimizer_state(trainer.optimizer, trainer.model_without_ddp, to_structured=True)
    out = {k: v.numpy() for k, v in state.items() if isinstance(v, paddle.Tensor)}
    out.update({f"master:{k}": v.numpy() for k, v in state.get("master_weights", {}).items()})
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_o2_keeps_float32_master_weights_ema_and_checkpoints(tmp_path, pretend_accelerator, dtype):
    def make():
        cfg = _cfg(tmp_path, amp={"enable": True, "dtype": dtype, "level": "O2"}, epochs=1)
        cfg.train.ema = {"enable": True, "decay": 0.9}
        return Trainer(cfg)

    t = make()
    model = t.model_without_ddp
    low = getattr(paddle, dtype)
    params = dict(model.named_parameters())
    assert params["head.fc.weight"].dtype == low and params["backbone.stages.0.0.pwconv1.weight"].dtype == low
    # float16 O2 keeps nn.LayerNorm in float32; bfloat16 O2 casts it too
    norm = params["backbone.stages.0.0.norm.weight"].dtype
    assert norm == (paddle.float32 if dtype == "float16" else low)
    assert t.optimizer._multi_precision  # master_weight=True
    assert (t.scaler is not None) == (dtype == "float16")
    assert all(v.dtype == paddle.float32 for v in t.ema.state_dict().values())

    _create_step_state(t)
    _scramble_step_state(t, seed=0)
    masters = t.optimizer._master_weights
    assert len(masters) == sum(p.dtype == low for p in model.parameters()) > 0
    assert all(m.dtype == paddle.float32 for m in masters.values())

    for p in model.parameters():  # as a step leaves them: each low-precision weight is its master's rounding
        if p.name in masters:
            paddle.assign(masters[p.name].astype(p.dtype), output=p)

    ckpt = t.checkpoint_dict(epoch_done=False)
    assert all(v.dtype == paddle.float32 for v in ckpt["model"].values())
    fc = model.head.fc.weight
    # saved weights are the float32 masters (values float16/bfloat16 cannot hold), not the low-precision copies
    np.testing.assert_array_equal(ckpt["model"]["head.fc.weight"].numpy(), masters[fc.name].numpy())
    assert not np.array_equal(masters[fc.name].numpy(), _params(model)["head.fc.weight"])
    # the EMA averages the masters too
    ema_before = t.ema.state_dict()["head.fc.weight"].numpy().copy()
    t.ema.update(model)
    expected = ema_before * 0.9 + masters[fc.name].numpy() * (1 - 0.9)
    np.testing.assert_allclose(t.ema.state_dict()["head.fc.weight"].numpy(), expected, rtol=1e-6, atol=1e-8)
    from paddle.amp.auto_cast import amp_global_state

    assert amp_global_state().use_master_grad  # float32 gradients accumulate over micro-batches
    amp_global_state().use_master_grad = False  # Paddle's process-wide flag: leave it as other tests expect
    before_model, before_opt = _params(model), _opt_arrays(t)
    assert any(k.startswith("master:") for k in before_opt)
    save_atomic(ckpt, str(tmp_path / "last.pdparams"))

    resumed = make()  # auto-resume in a model whose Paddle parameter names all differ
    assert {n: p.name for n, p in resumed.model_without_ddp.named_parameters()} != {
        n: p.name for n, p in model.named_parameters()
    }
    assert resumed.model_without_ddp.head.fc.weight.dtype == low  # float32 checkpoint cast back to the model
    after_model = _params(resumed.model_without_ddp)
    for k in before_model:
        np.testing.assert_array_equal(after_model[k], before_model[k], err_msg=k)
    _create_step_state(resumed)  # picks up the restored master weights and moments
    after_opt = _opt_arrays(resumed)
    assert after_opt.keys() == before_opt.keys()
    for k in before_opt:
        np.testing.assert_array_equal(after_opt[k], before_opt[k], err_msg=k)
