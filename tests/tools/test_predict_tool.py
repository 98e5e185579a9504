"""tools/predict.py on a folder of mixed images (sizes, modes, a 1-pixel-wide one, a big one, a broken one) through
every backend: the same top-k everywhere, each image brought to the model's 28x28 input, the broken file named and
the rest still classified (exit code 1)."""

import re

import numpy as np
import pytest
from PIL import Image

from tests.tools.tool_helpers import DEMO, TINY, export_tiny, run_tool, tiny_weights

GOOD = [
    "a_gray28.png",
    "b_rgb64.png",
    "c_rgba.png",
    "d_palette.png",
    "e_cmyk.jpg",
    "f_1px.png",
    "g_big.jpg",
    "h_16bit.tif",
]
LINE = re.compile(r"^(\S+): (.+)$")


def _mixed_folder(folder):
    folder.mkdir()
    rng = np.random.RandomState(0)

    def rgb(h, w):
        return Image.fromarray((rng.rand(h, w, 3) * 255).astype(np.uint8))

    Image.fromarray((rng.rand(28, 28) * 255).astype(np.uint8)).save(folder / "a_gray28.png")
    rgb(64, 64).save(folder / "b_rgb64.png")
    rgb(30, 40).convert("RGBA").save(folder / "c_rgba.png")
    rgb(50, 50).convert("P").save(folder / "d_palette.png")
    rgb(45, 33).convert("CMYK").save(folder / "e_cmyk.jpg")
    rgb(60, 1).save(folder / "f_1px.png")  # 1 pixel wide
    rgb(1200, 1600).save(folder / "g_big.jpg")
    Image.fromarray((rng.rand(30, 30) * 65535).astype(np.uint16)).save(folder / "h_16bit.tif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / ".hidden.png").write_bytes(b"AppleDouble junk")  # hidden: skipped, not an error
    (folder / "notes.txt").write_text("not an image")  # not an image extension: ignored
    return folder


def _parse(stdout):
    out = {}
    for ln in stdout.splitlines():
        m = LINE.match(ln)
        if m and m.group(1) in GOOD:
            out[m.group(1)] = [(" ".join(p.split()[:-1]), float(p.split()[-1])) for p in m.group(2).split("; ")]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    tmp = tmp_path_factory.mktemp("predict")
    weights = tmp / "w.pdparams"
    model = tiny_weights(weights)
    export_tiny(weights, tmp / "inf", onnx=True)
    return model, weights, tmp / "inf", _mixed_folder(tmp / "imgs")


def test_every_backend_gives_the_same_topk_on_a_mixed_folder(exported):
    model, weights, inf, imgs = exported
    results = {}
    for backend, src in (
        ("dygraph", ["--weights", str(weights)]),
        ("paddle", ["--model-dir", str(inf)]),
        ("onnx", ["--model-dir", str(inf)]),
    ):
        res = run_tool(
            [
                "tools/predict.py",
                "-c",
                DEMO,
                *TINY,
                *src,
                "--backend",
                backend,
                "--topk",
                "3",
                "--batch-size",
                "3",
                str(imgs),
            ]
        )
        assert res.returncode == 1, (backend, res.stderr[-3000:])  # one unreadable file
        err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(err) == 2 and "broken.png" in err[0] and "1 of 9 images" in err[1], res.stderr[-3000:]
        assert "Traceback" not in res.stderr and ".hidden" not in res.stderr + res.stdout
        got = _parse(res.stdout)
        assert sorted(got) == sorted(GOOD), res.stdout
        results[backend] = got
    for name in GOOD:
        ref = results["dygraph"][name]
        for backend in ("paddle", "onnx"):
            other = results[backend][name]
            assert [c for c, _ in other] == [c for c, _ in ref], (name, backend, ref, other)
            assert np.allclose([p for _, p in other], [p for _, p in ref], atol=2e-3), (name, backend)
    # The 64x64 image was brought to the model's 28x28 input by the config's eval transforms.
    import paddle

    from passl.data import build_transforms
    from passl.data.datasets.fashion_mnist import CLASSES
    from passl.utils.config import get_config

    cfg = get_config(DEMO)
    tf = build_transforms(cfg.data.val.transforms)
    x = tf(Image.open(imgs / "b_rgb64.png").convert("L"))
    assert x.shape == (1, 28, 28)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x[None])).numpy()[0]
    assert results["dygraph"]["b_rgb64.png"][0][0] == CLASSES[int(logits.argmax())]


def test_config_errors_and_missing_inputs(exported, tmp_path):
    _, weights, inf, imgs = exported
    res = run_tool(["tools/predict.py", "-c", DEMO, *TINY, "--weights", str(weights), str(tmp_path / "nothing")])
    assert res.returncode == 2 and "no such image or folder" in res.stderr and "Traceback" not in res.stderr
    res = run_tool(["tools/predict.py", "-c", DEMO, *TINY, "--weights", str(weights), "--topk", "0", str(imgs)])
    assert res.returncode == 2 and "--topk and --batch-size must be at least 1" in res.stderr
    # an export made for another input size than the config's transforms give is refused up front, naming both
    res = run_tool(
        [
            "tools/predict.py",
            "-c",
            DEMO,
            *TINY,
            "-o",
            "data.val.transforms.0.size=32",
            "--backend",
            "onnx",
            "--model-dir",
            str(inf),
            str(imgs / "a_gray28.png"),
        ]
    )
    assert res.returncode == 2 and "1x28x28" in res.stderr and "1x32x32" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
