"""FCMAE: the dense masked encoder equals the sparse one on every visible site, the loss equals a NumPy reference,
the masks follow the official rule and are reproducible from the seed, gradients reach every parameter."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.architectures.fcmae import FCMAE, patchify, unpatchify
from passl.modeling.layers import GRN
from passl.registry import ConfigError

# Encoders: a 3-stage model with a 2x2 stem (stride 8), a 3-stage one with a 1x1 stem (stride 4) and a 4-stage
# official-shape one (4x4 stem, stride 32). (config, input size)
ENCODERS = {
    "3stage_stem2": ({"name": "ConvNeXtV2", "depths": [1, 1, 2], "dims": [8, 16, 24], "patch_size": 2}, 32),
    "3stage_stem1": ({"name": "ConvNeXtV2", "depths": [2, 1, 1], "dims": [8, 8, 16], "patch_size": 1}, 20),
    "4stage_stem4": ({"name": "ConvNeXtV2", "depths": [1, 1, 2, 1], "dims": [8, 12, 16, 24]}, 96),
}


def build(encoder, **kw):
    kw.setdefault("decoder_embed_dim", 16)
    return build_model({"name": "FCMAE", "architecture": dict(encoder), **kw})


def randomize(model, seed=0):
    """Non-trivial values for every tensor that starts at zero or one (GRN gamma/beta, norms, biases), so that a
    masked site carries non-zero values wherever a layer could leak them."""
    rng = np.random.RandomState(seed)
    for name, p in model.named_parameters():
        if "grn" in name or name.endswith("bias") or "norm" in name:
            base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.set_value(paddle.to_tensor((base + 0.3 * rng.randn(*p.shape)).astype("float32")))


def grid_mask(model, n, h, w, seed):
    paddle.seed(seed)
    return model.random_mask(n, h // model.patch_size, w // model.patch_size)


def pixel_mask(model, mask, h, w):
    """(N, L) cell mask -> (N, 1, H, W) pixel mask."""
    p = model.patch_size
    return unpatchify(mask.unsqueeze(-1).tile([1, 1, p * p]), p, h // p, w // p)


def visible_values(feats, mask):
    """The encoder output at visible sites, as one flat tensor (N, C, h, w) x (N, L) mask."""
    n, c, h, w = feats.shape
    vis = (mask.reshape([n, 1, h, w]) == 0).tile([1, c, 1, 1])
    return paddle.masked_select(feats, vis)


# ---------------------------------------------------------------------------------------- (a) masked pixels
@pytest.mark.parametrize("name", list(ENCODERS))
def test_masked_pixels_do_not_reach_visible_outputs_bit_for_bit(name):
    cfg, size = ENCODERS[name]
    model = build(cfg)
    randomize(model)
    model.eval()
    n = 3
    mask = grid_mask(model, n, size, size, seed=1)
    assert not paddle.equal_all(mask[0], mask[1]) and not paddle.equal_all(mask[1], mask[2])  # per-sample masks
    grid = size // model.patch_size
    m3 = mask.reshape([n, grid, grid])
    imgs = paddle.randn([n, 3, size, size])
    pix = pixel_mask(model, mask, size, size)
    changed = imgs * (1 - pix) + paddle.randn(imgs.shape) * 5.0 * pix  # new pixels in every masked patch
    assert not paddle.equal_all(changed, imgs)
    with paddle.no_grad():
        a = model.encoder.forward_features(imgs, m3)
        b = model.encoder.forward_features(changed, m3)
        va, vb = visible_values(a, mask), visible_values(b, mask)
        assert va.shape[0] == int((mask == 0).sum()) * a.shape[1] > 0
        assert bool(paddle.equal_all(va, vb)), f"max diff {float((va - vb).abs().max())}"
        # and the loss changes only through the targets of the masked patches
        loss = model(imgs, mask=mask)
        loss_changed = model(changed, mask=mask, target=imgs)
        assert bool(paddle.equal_all(loss, loss_changed))
        assert float(model(changed, mask=mask)) != float(loss)  # its own targets differ: the loss sees them
        # a changed visible pixel does change the output (the comparison above is not vacuous)
        vis_pix = 1 - pix
        moved = imgs + vis_pix * 0.5
        assert not bool(paddle.equal_all(visible_values(model.encoder.forward_features(moved, m3), mask), va))


def add_noise_at_masked_sites(encoder, mask, grid, scale=10.0):
    """Forward pre-hooks that add large noise at the masked sites of the input of every layer after the stem conv:
    each block (before its own masking), each per-site layer inside a block (norm, pwconv1, act, GRN, pwconv2),
    the stem LayerNorm and both layers of each downsampling. A masked value must reach no visible output.
    ``scale=0`` adds nothing but runs the same (hooked, so unfused: passl.modeling.layers.linear_gelu) code path."""
    n = int(mask.shape[0])
    cells = mask.reshape([n, 1, grid, grid])

    def masked_map(h, w, channels_last):
        m = cells.repeat_interleave(h // grid, axis=2).repeat_interleave(w // grid, axis=3)
        return m.transpose([0, 2, 3, 1]) if channels_last else m

    def hook(channels_last):
        def add(layer, inputs):
            x = inputs[0]
            h, w = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
            return (x + scale * paddle.randn(x.shape) * masked_map(h, w, channels_last),) + tuple(inputs[1:])

        return add

    handles = [encoder.downsample_layers[0][1].register_forward_pre_hook(hook(False))]
    for down in list(encoder.downsample_layers)[1:]:
        handles += [down[0].register_forward_pre_hook(hook(False)), down[1].register_forward_pre_hook(hook(False))]
    for stage in encoder.stages:
        for block in stage:
            handles.append(block.register_forward_pre_hook(hook(False)))
            for part in (block.norm, block.pwconv1, block.act, block.grn, block.pwconv2):
                handles.append(part.register_forward_pre_hook(hook(True)))
    return handles


@pytest.mark.parametrize("name", list(ENCODERS))
def test_values_at_masked_sites_of_any_layer_do_not_reach_visible_outputs(name):
    """Stronger than changing masked pixels (which the stem mask erases at once): noise injected at the masked
    sites of every layer's input leaves every visible output bit for bit unchanged."""
    cfg, size = ENCODERS[name]
    model = build(cfg)
    randomize(model)
    model.eval()
    n, grid = 3, size // model.patch_size
    mask = grid_mask(model, n, size, size, seed=2)
    imgs = paddle.randn([n, 3, size, size])
    with paddle.no_grad():
        runs = []
        for scale in (0.0, 10.0):  # the clean run hooked too: the same kernels, so bit-for-bit comparable
            handles = add_noise_at_masked_sites(model.encoder, mask, grid, scale)
            try:
                runs.append(model.encoder.forward_features(imgs, mask.reshape([n, grid, grid])))
            finally:
                for h in handles:
                    h.remove()
        clean, noisy = runs
    assert not bool(paddle.equal_all(clean, noisy))  # the noise went in (at masked sites)
    assert bool(paddle.equal_all(visible_values(clean, mask), visible_values(noisy, mask)))


def test_decoder_sees_the_mask_token_at_masked_sites(monkeypatch):
    """Whatever the encoder leaves at masked sites, the decoder input there is the mask token: the prediction is
    bit for bit unchanged by noise at the encoder output's masked sites."""
    cfg, size = ENCODERS["3stage_stem2"]
    model = build(cfg)
    randomize(model)
    model.eval()
    n = 2
    mask = grid_mask(model, n, size, size, seed=5)
    imgs = paddle.randn([n, 3, size, size])
    with paddle.no_grad():
        clean = model(imgs, mask=mask, return_all=True)
        plain = model.encoder.forward_features

        def noisy(x, m=None):
            out = plain(x, m)
            return out + 10.0 * paddle.randn(out.shape) * m.unsqueeze(1)

        monkeypatch.setattr(model.encoder, "forward_features", noisy)
        got = model(imgs, mask=mask, return_all=True)
    assert bool(paddle.equal_all(clean["pred"], got["pred"])) and bool(paddle.equal_all(clean["loss"], got["loss"]))


@pytest.mark.parametrize("name", list(ENCODERS))
def test_masked_encoder_equals_the_dense_model_on_the_visible_crop(name):
    """The sparse encoder's meaning: with only an aligned rectangle of cells visible, every visible output is what
    the dense network computes on that rectangle alone (zero padding at its border = absent neighbours; GRN over
    its sites only). Each sample gets its own rectangle."""
    cfg, size = ENCODERS[name]
    model = build(cfg)
    randomize(model)
    model.eval()
    p, grid = model.patch_size, size // model.patch_size
    rects = [(0, grid, 0, grid - 1), (1, grid, 0, grid), (0, max(1, grid - 1), 1, grid)]
    n = len(rects)
    mask = np.ones((n, grid, grid), dtype="float32")
    for i, (r0, r1, c0, c1) in enumerate(rects):
        mask[i, r0:r1, c0:c1] = 0.0
    imgs = paddle.randn([n, 3, size, size])
    with paddle.no_grad():
        feats = model.encoder.forward_features(imgs, paddle.to_tensor(mask)).numpy()
        for i, (r0, r1, c0, c1) in enumerate(rects):
            crop = imgs[i : i + 1, :, r0 * p : r1 * p, c0 * p : c1 * p]
            ref = model.encoder.forward_features(crop).numpy()[0]
            got = feats[i, :, r0:r1, c0:c1]
            assert np.abs(ref).max() > 0.1
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_grn_statistics_come_from_each_samples_visible_sites():
    grn = GRN(5)
    rng = np.random.RandomState(0)
    grn.gamma.set_value(paddle.to_tensor(rng.randn(5).astype("float32")))
    grn.beta.set_value(paddle.to_tensor(rng.randn(5).astype("float32")))
    x = rng.randn(2, 4, 4, 5).astype("float32")
    vis = (rng.rand(2, 4, 4, 1) > 0.5).astype("float32")
    got = grn(paddle.to_tensor(x), paddle.to_tensor(vis)).numpy()
    gx = np.sqrt(((x * vis) ** 2).sum(axis=(1, 2), keepdims=True))
    nx = gx / (gx.mean(axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(got, grn.gamma.numpy() * (x * nx) + grn.beta.numpy() + x, rtol=1e-5, atol=1e-5)
    # all visible: the plain GRN, bit for bit
    ones = paddle.ones([2, 4, 4, 1])
    assert bool(paddle.equal_all(grn(paddle.to_tensor(x), ones), grn(paddle.to_tensor(x))))


# ------------------------------------------------------------------------------------------ (b) the loss
def numpy_patchify(imgs, p):
    n, c, h, w = imgs.shape
    out = []
    for i in range(h // p):
        for j in range(w // p):
            block = imgs[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p]  # (N, C, p, q)
            out.append(block.transpose(0, 2, 3, 1).reshape(n, -1))  # (p, q, c), c fastest
    return np.stack(out, axis=1)


def numpy_loss(pred, imgs, mask, p, norm_pix):
    target = numpy_patchify(imgs.astype(np.float64), p)
    if norm_pix:
        mean = target.mean(axis=-1, keepdims=True)
        var = target.var(axis=-1, ddof=1, keepdims=True)
        target = (target - mean) / np.sqrt(var + 1e-6)
    per_patch = ((pred.astype(np.float64) - target) ** 2).mean(axis=-1)
    return (per_patch * mask).sum() / mask.sum(), target


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_equals_a_numpy_reference(norm_pix):
    cfg, size = ENCODERS["3stage_stem2"]
    model = build(cfg, norm_pix_loss=norm_pix, mask_ratio=0.6)
    randomize(model)
    paddle.seed(3)
    imgs = paddle.randn([4, 3, size, size]) * 2.0 + 0.5
    out = model(imgs, return_all=True)
    ref, target = numpy_loss(out["pred"].numpy(), imgs.numpy(), out["mask"].numpy(), model.patch_size, norm_pix)
    assert out["loss"].dtype == paddle.float32 and out["loss"].shape == []
    np.testing.assert_allclose(float(out["loss"]), ref, rtol=1e-5)
    np.testing.assert_allclose(out["target"].numpy(), target, rtol=1e-5, atol=1e-5)
    # random predictions too (the model's are small at init)
    pred = paddle.randn(out["pred"].shape)
    ref, _ = numpy_loss(pred.numpy(), imgs.numpy(), out["mask"].numpy(), model.patch_size, norm_pix)
    got = model.forward_loss(pred, model.target_of(imgs), out["mask"])
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)
    assert model.compute_loss(out["loss"], paddle.zeros([4], dtype="int64")) is out["loss"]


def test_patchify_order_and_round_trip():
    x = paddle.arange(2 * 3 * 4 * 6, dtype="float32").reshape([2, 3, 4, 6])
    np.testing.assert_array_equal(patchify(x, 2).numpy(), numpy_patchify(x.numpy(), 2))
    np.testing.assert_array_equal(unpatchify(patchify(x, 2), 2, 2, 3).numpy(), x.numpy())


def test_loss_is_float32_for_half_precision_predictions():
    """Under AMP the prediction comes out of the decoder in float16/bfloat16; the loss is still float32."""
    cfg, size = ENCODERS["3stage_stem2"]
    model = build(cfg)
    imgs = paddle.randn([2, 3, size, size])
    mask = grid_mask(model, 2, size, size, seed=0)
    pred = paddle.randn([2, 16, 8 * 8 * 3]).astype("float16")
    loss = model.forward_loss(pred, model.target_of(imgs), mask)
    assert loss.dtype == paddle.float32
    ref, _ = numpy_loss(pred.astype("float32").numpy(), imgs.numpy(), mask.numpy(), 8, True)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ (c) masks
@pytest.mark.parametrize("grid,ratio", [((7, 7), 0.6), ((4, 4), 0.75), ((3, 5), 0.6), ((2, 2), 0.6), ((4, 4), 0.3)])
def test_masks_have_the_official_count_per_sample(grid, ratio):
    model = build(ENCODERS["3stage_stem2"][0], mask_ratio=ratio)
    length = grid[0] * grid[1]
    paddle.seed(0)
    mask = model.random_mask(16, *grid).numpy()
    assert mask.shape == (16, length) and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=1), np.full(16, length - int(length * (1 - ratio))))
    if length >= 9:
        assert len({row.tobytes() for row in mask}) > 8  # masks differ across samples


def test_masks_are_reproducible_from_the_seed():
    model = build(ENCODERS["3stage_stem2"][0])
    paddle.seed(7)
    a = model.random_mask(4, 7, 7)
    paddle.seed(7)
    b = model.random_mask(4, 7, 7)
    paddle.seed(8)
    c = model.random_mask(4, 7, 7)
    assert bool(paddle.equal_all(a, b)) and not bool(paddle.equal_all(a, c))
    # the forward pass draws its mask from the same generator
    cfg, size = ENCODERS["3stage_stem2"]
    imgs = paddle.randn([2, 3, size, size])
    paddle.seed(11)
    first = model(imgs, return_all=True)
    paddle.seed(11)
    again = model(imgs, return_all=True)
    assert bool(paddle.equal_all(first["mask"], again["mask"])) and float(first["loss"]) == float(again["loss"])


def test_size_errors_name_the_sizes():
    cfg, size = ENCODERS["3stage_stem2"]
    with pytest.raises(ConfigError, match=r"patch_size is 16 but the encoder's total stride is 8"):
        build(cfg, patch_size=16)
    assert build(cfg, patch_size=8).patch_size == 8 and build(cfg).patch_size == 8
    model = build(cfg)
    with pytest.raises(ConfigError, match=r"input size 30x32 is not divisible by the mask patch_size 8"):
        model(paddle.randn([1, 3, 30, 32]))
    with pytest.raises(ConfigError, match=r"mask must have shape \(N, L\) = \(2, 16\).*got \[2, 9\]"):
        model(paddle.randn([2, 3, 32, 32]), mask=paddle.zeros([2, 9]))
    with pytest.raises(ConfigError, match=r"mask_ratio must be in \(0, 1\), got 1.0"):
        build(cfg, mask_ratio=1.0)
    with pytest.raises(ConfigError, match=r"stage 2 grid 4x4 is not a multiple of the mask grid 8x8"):
        model.encoder.forward_features(paddle.randn([1, 3, 32, 32]), paddle.zeros([1, 8, 8]))


# ---------------------------------------------------------------------------------------- (d) all visible
@pytest.mark.parametrize("name", list(ENCODERS))
def test_all_visible_mask_is_the_plain_v2_forward(name):
    cfg, size = ENCODERS[name]
    model = build(cfg)
    randomize(model)
    model.eval()
    imgs = paddle.randn([2, 3, size, size])
    grid = size // model.patch_size
    with paddle.no_grad():
        masked = model.encoder.forward_features(imgs, paddle.zeros([2, grid, grid])).numpy()
        plain = model.encoder.forward_features(imgs).numpy()
    assert np.abs(plain).max() > 0.1
    np.testing.assert_allclose(masked, plain, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------- (e) gradients
def test_one_backward_reaches_every_parameter():
    cfg, size = ENCODERS["3stage_stem2"]
    model = build(cfg, decoder_depth=2)
    model.train()
    paddle.seed(0)
    loss = model(paddle.randn([2, 3, size, size]))
    loss.backward()
    assert np.isfinite(float(loss))
    for name, p in model.named_parameters():  # no unused parameter (DataParallel would stop on one)
        assert p.grad is not None, name
        assert np.isfinite(p.grad.numpy()).all(), name
    for name in ("mask_token", "proj.weight", "pred.weight", "decoder.1.pwconv1.weight"):
        assert float(dict(model.named_parameters())[name].grad.abs().sum()) > 0, name
    assert float(model.encoder.downsample_layers[0][0].weight.grad.abs().sum()) > 0
    assert not any(k.startswith("encoder.norm.") for k in model.state_dict())


def test_names_match_the_official_fcmae():
    model = build(ENCODERS["4stage_stem4"][0], decoder_embed_dim=16)
    sd = model.state_dict()
    assert list(sd["mask_token"].shape) == [1, 16, 1, 1]
    assert list(sd["proj.weight"].shape) == [16, 24, 1, 1]
    assert list(sd["pred.weight"].shape) == [32 * 32 * 3, 16, 1, 1]
    assert list(sd["decoder.0.grn.gamma"].shape) == [64] and "decoder.0.gamma" not in sd  # V2 block, no layer scale
    assert "encoder.downsample_layers.0.0.weight" in sd and "encoder.stages.3.0.dwconv.weight" in sd
    assert isinstance(model, FCMAE) and model.patch_size == 32


# ------------------------------------------------------------------------------------------- reconstruct
@pytest.mark.parametrize("norm_pix", [True, False])
def test_reconstruct_gives_pictures_in_the_input_space(norm_pix):
    cfg, size = ENCODERS["3stage_stem2"]
    model = build(cfg, norm_pix_loss=norm_pix)
    randomize(model)
    model.train()
    model.decoder.eval()  # a caller's mixed modes come back as they were
    imgs = paddle.randn([2, 3, size, size]) * 3.0 + 1.0
    mask = grid_mask(model, 2, size, size, seed=4)
    rec = model.reconstruct(imgs, mask)
    assert model.training and model.encoder.training and not model.decoder.training
    assert rec["mask_img"].shape == [2, 1, size, size] and rec["pred_img"].shape == [2, 3, size, size]
    assert rec["pred_img"].stop_gradient
    np.testing.assert_array_equal(rec["mask_img"].numpy(), pixel_mask(model, mask, size, size).numpy())
    model.eval()
    out = model(imgs, mask=mask, return_all=True)
    patches = numpy_patchify(rec["pred_img"].numpy().astype(np.float64), model.patch_size)
    if norm_pix:  # normalising the picture with the input's patch statistics gives the prediction back
        src = numpy_patchify(imgs.numpy().astype(np.float64), model.patch_size)
        mean, std = src.mean(-1, keepdims=True), np.sqrt(src.var(-1, ddof=1, keepdims=True) + 1e-6)
        patches = (patches - mean) / std
    np.testing.assert_allclose(patches, out["pred"].numpy(), rtol=1e-4, atol=1e-4)
