"""The ConvNeXt V2 fine-tuning recipes run in the trainer: FCMAE encoder weights load (final norm and head left at
init), layer decay single/group and the recipe's loss and mixup settings, two steps on synthetic data."""

import json
import os

import numpy as np
import paddle
import pytest

from passl.engine.trainer import Trainer
from passl.modeling import build_model
from passl.utils.config import AttrDict
from tests.engine.helpers import tiny_cfg


@pytest.mark.parametrize("arch", ["atto", "tiny", "base"])  # the three official recipes
def test_two_steps_of_a_v2_recipe_from_fcmae_weights(arch, tmp_path):
    cfg = tiny_cfg(tmp_path, base=f"configs/convnext_v2/convnextv2_{arch}.yaml", max_steps=2)
    cfg.model.architecture = AttrDict(name="ConvNeXtV2", depths=[1, 1, 2, 1], dims=[8, 16, 32, 64], drop_path_rate=0.1)
    cfg.data.train.batch_size = 2
    # An encoder-only checkpoint (what FCMAE pre-training gives): no final norm, no head.
    encoder = {k: v for k, v in build_model(cfg.model).state_dict().items() if k.startswith("backbone.")}
    encoder = {k: v for k, v in encoder.items() if not k.startswith("backbone.norm.")}
    path = str(tmp_path / "fcmae.pdparams")
    paddle.save(encoder, path)
    cfg.model.pretrained = path
    cfg.model.drop_head = True
    trainer = Trainer(cfg)
    scales = {g["learning_rate"] for g in trainer.optimizer._param_groups}
    # single: one lr scale per block (5 blocks; downsampling shares its stage's first block) plus the head's;
    # group (V1's ids): stem 0, stage 0 1, stage 1 2, downsample 2 3, stage-2 blocks 3 and 7, stage 3 12, head 13
    assert len(scales) == (6 if cfg.optimizer.layer_decay_type == "single" else 7)
    state = trainer.train()
    assert state["step"] == 2
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert all(np.isfinite(x["loss"]) for x in lines if x["type"] == "train")
    assert os.path.isfile(tmp_path / "last.pdparams")
