"""The evaluator keeps its sums on the device and reads them once at the end (no host sync per batch), with the same
metrics as a NumPy reference, skipped images (label -1) included."""

import numpy as np
import paddle
import pytest

from passl.engine.evaluator import evaluate

_SYNCS = ("numpy", "item", "tolist", "__float__", "__int__", "__bool__", "__index__")


class _Loader:
    def __init__(self, images, labels, batch):
        self.images, self.labels, self.batch = images, labels, batch

    def __len__(self):
        return -(-len(self.labels) // self.batch)

    def __iter__(self):
        for i in range(0, len(self.labels), self.batch):
            yield paddle.to_tensor(self.images[i : i + self.batch]), paddle.to_tensor(self.labels[i : i + self.batch])


def _data(n, classes=7, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.randn(n, 5).astype("float32")
    labels = rng.randint(0, classes, n).astype("int64")
    labels[::5] = -1  # unreadable images the dataset skipped
    return images, labels


def _model(classes=7):
    paddle.seed(1)
    return paddle.nn.Linear(5, classes)


def _count_syncs(monkeypatch, fn):
    count = [0]
    for name in _SYNCS:
        real = getattr(paddle.Tensor, name)

        def spy(self, *a, _real=real, **k):
            count[0] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(paddle.Tensor, name, spy)
    result = fn()
    monkeypatch.undo()
    return count[0], result


@pytest.mark.parametrize("n", [12, 40])
def test_metrics_match_numpy(n):
    images, labels = _data(n)
    model = _model()
    res = evaluate(model, _Loader(images, labels, 4))
    logits = model(paddle.to_tensor(images)).numpy().astype("float64")
    ok = labels >= 0
    lg, lb = logits[ok], labels[ok]
    logp = lg - lg.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    top5 = np.argsort(-lg, 1)[:, :5]
    assert res["count"] == ok.sum() and res["skipped"] == (~ok).sum()
    assert res["top1"] == pytest.approx(100.0 * (top5[:, 0] == lb).mean(), abs=1e-9)
    assert res["top5"] == pytest.approx(100.0 * (top5 == lb[:, None]).any(1).mean(), abs=1e-9)
    assert res["loss"] == pytest.approx(-logp[np.arange(len(lb)), lb].mean(), rel=1e-5)


def test_host_syncs_do_not_grow_with_batches(monkeypatch):
    model = _model()
    few, _ = _count_syncs(monkeypatch, lambda: evaluate(model, _Loader(*_data(8), 4)))  # 2 batches
    many, _ = _count_syncs(monkeypatch, lambda: evaluate(model, _Loader(*_data(40), 4)))  # 10 batches
    assert many == few, f"{few} host reads for 2 batches, {many} for 10"
