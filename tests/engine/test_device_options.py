"""Device and AMP options: ``train.device: gpu:N`` is refused with several processes, the AMP white list reaches
Paddle's autocast, bad values name their key, and rank 0 fetches a pretrained file before the others read it."""

import paddle
import pytest

from passl.engine.trainer import Trainer, _device
from passl.registry import ConfigError
from passl.utils import dist
from tests.engine.helpers import tiny_cfg
from tests.engine.test_amp import pretend_accelerator  # noqa: F401 (fixture)

pytestmark = pytest.mark.filterwarnings("ignore:amp_guard can only be enabled", "ignore:AmpScaler can only be enabled")


def test_numbered_device_with_several_processes_is_refused():
    with pytest.raises(ConfigError, match=r"train.device: gpu:1 puts all 2 processes on one device.*--devices"):
        _device("gpu:1", world_size=2)
    assert _device("cpu", world_size=2) == "cpu"
    assert _device("gpu:1", world_size=1) == "gpu:1"  # one process: the user's choice
    assert _device(None, world_size=2) == "cpu"  # no GPU here: this process's device is the CPU


def test_trainer_refuses_gpu_n_under_a_launcher(tmp_path, monkeypatch):
    monkeypatch.setattr("passl.engine.trainer.init_distributed", lambda: None)
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    cfg = tiny_cfg(tmp_path, device="gpu:0")
    with pytest.raises(ConfigError, match="train.device: gpu:0"):
        Trainer(cfg)


def test_custom_white_list_reaches_autocast(tmp_path, pretend_accelerator):  # noqa: F811
    seen = []
    cfg = tiny_cfg(tmp_path, max_steps=1)
    cfg.train.amp = {"enable": True, "dtype": "bfloat16", "level": "O1", "custom_white_list": ["depthwise_conv2d"]}
    t = Trainer(cfg)

    def capture(layer, inputs):
        white, _ = paddle.base.framework._dygraph_tracer()._get_amp_op_list()
        seen.append(set(white))

    t.model_without_ddp.register_forward_pre_hook(capture)
    t.train()
    assert seen and "depthwise_conv2d" in seen[0]


def test_default_white_list_leaves_depthwise_out(tmp_path, pretend_accelerator):  # noqa: F811
    seen = []
    cfg = tiny_cfg(tmp_path, max_steps=1)
    cfg.train.amp = {"enable": True, "dtype": "bfloat16", "level": "O1"}
    t = Trainer(cfg)
    t.model_without_ddp.register_forward_pre_hook(
        lambda layer, inputs: seen.append(set(paddle.base.framework._dygraph_tracer()._get_amp_op_list()[0]))
    )
    t.train()
    assert seen and "depthwise_conv2d" not in seen[0] and "conv2d" in seen[0]


@pytest.mark.parametrize("bad", ["depthwise_conv2d", [1], [""]])
def test_bad_white_list_names_the_key(tmp_path, bad):
    cfg = tiny_cfg(tmp_path)
    cfg.train.amp = {"enable": True, "custom_white_list": bad}
    with pytest.raises(ConfigError, match="train.amp.custom_white_list"):
        Trainer(cfg)


@pytest.mark.parametrize("key", ["use_shared_memory", "persistent_workers"])
def test_loader_flags_must_be_booleans(tmp_path, key):
    cfg = tiny_cfg(tmp_path)
    cfg.data.train[key] = "false"
    with pytest.raises(ConfigError, match=f"data.train.{key}' is 'false'; allowed: true or false"):
        Trainer(cfg)


@pytest.mark.parametrize("rank", [0, 1])
def test_main_process_first_orders_rank0_before_the_others(monkeypatch, rank):
    events = []
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("PADDLE_TRAINER_ID", str(rank))
    monkeypatch.setattr(dist, "barrier", lambda: events.append("barrier"))
    with dist.main_process_first():
        events.append("work")
    # rank 0 works (downloads) then releases the barrier; the others pass the barrier first, then read the cache
    assert events == (["work", "barrier"] if rank == 0 else ["barrier", "work"])
