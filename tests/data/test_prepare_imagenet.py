"""tools/prepare_imagenet.py on a generated raw val folder: every label format, both output modes, loaded back with
the registered ImageNet / ImageList datasets; re-runs, relabelling, copy fallback and the user errors."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from passl.data import build_dataset, imagenet_wnids
from tests.engine.helpers import ROOT

_spec = importlib.util.spec_from_file_location("prepare_imagenet", os.path.join(ROOT, "tools", "prepare_imagenet.py"))
prep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prep)

CLASSES = ["n00000001", "n00000002", "n00000003"]  # sorted: labels 0, 1, 2
TRUTH = [2, 0, 1, 2, 1, 0]  # label of ILSVRC2012_val_0000000{1..6}
IDS = {1: "n00000003", 2: "n00000001", 3: "n00000002"}  # devkit ILSVRC2012_ID -> wnid, deliberately not sorted


def _name(i, ext="JPEG"):
    return f"ILSVRC2012_val_{i:08d}.{ext}"


@pytest.fixture
def raw(tmp_path):
    """tmp/ILSVRC2012/val with five JPEGs and one PNG (named .png), plus a --classes file listing the 3 wnids."""
    src = tmp_path / "ILSVRC2012" / "val"
    src.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(1, 7):
        img = Image.fromarray((rng.rand(20, 24, 3) * 255).astype(np.uint8))
        if i == 6:
            img.save(src / _name(i, "png"))
        else:
            img.save(src / _name(i), format="JPEG")
    (tmp_path / "classes.txt").write_text("n00000003\nn00000001\nn00000002\n")
    return src


def _labels(tmp_path, fmt):
    """Write the ground truth of ``raw`` in format ``fmt``; returns extra CLI arguments."""
    wnid = {i: CLASSES[lab] for i, lab in enumerate(TRUTH, 1)}
    if fmt.startswith("devkit"):
        inv = {w: k for k, w in IDS.items()}
        (tmp_path / "gt.txt").write_text("".join(f"{inv[wnid[i]]}\n" for i in range(1, 7)))
        if fmt == "devkit-mat":
            sio = pytest.importorskip("scipy.io")
            rec = np.zeros(5, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
            for k, (i, w) in enumerate([*IDS.items(), (1001, "n00000099"), (1002, "n00000098")]):
                rec[k] = (i, w, 0 if i <= 3 else 2)
            sio.savemat(str(tmp_path / "meta.mat"), {"synsets": rec})
            return ["--labels", str(tmp_path / "gt.txt"), "--meta", str(tmp_path / "meta.mat")]
        (tmp_path / "map.txt").write_text("".join(f"{w} {k} name_{k}\n" for k, w in IDS.items()))
        return ["--labels", str(tmp_path / "gt.txt"), "--meta", str(tmp_path / "map.txt")]
    if fmt == "text-wnid":  # PNG listed by its real name
        lines = [f"{_name(i, 'png' if i == 6 else 'JPEG')} {wnid[i]}" for i in range(1, 7)]
        (tmp_path / "val_list.txt").write_text("\n".join(lines) + "\n")
        return ["--labels", str(tmp_path / "val_list.txt")]
    if fmt == "text-index":  # PaddleClas val_list.txt: a folder part and label indices
        (tmp_path / "val_list.txt").write_text("".join(f"val/{_name(i)} {TRUTH[i - 1]}\n" for i in range(1, 7)))
        return ["--labels", str(tmp_path / "val_list.txt")]
    assert fmt == "csv"  # Kaggle: no extension, boxes after the wnid
    rows = [f"{_name(i)[:-5]},{wnid[i]} 1 2 30 40 {wnid[i]} 5 6 7 8 " for i in range(1, 7)]
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    return ["--labels", str(tmp_path / "LOC_val_solution.csv")]


def _run(args):
    return prep.main([str(a) for a in args])


def _check_dataset(ds):
    got = {os.path.splitext(os.path.basename(p))[0]: lab for p, lab in ds.samples}
    assert got == {_name(i)[:-5]: TRUTH[i - 1] for i in range(1, 7)}
    img, lab = ds[0]
    assert img.size == (24, 20) and lab in (0, 1, 2)


@pytest.mark.parametrize("fmt", ["devkit-map", "devkit-mat", "text-wnid", "text-index", "csv"])
@pytest.mark.parametrize("mode", ["link", "symlink", "list"])
def test_formats_and_outputs_load_with_the_datasets(raw, tmp_path, fmt, mode):
    args = [raw, *_labels(tmp_path, fmt), "--classes", tmp_path / "classes.txt"]
    out = tmp_path / "out"
    if mode == "list":
        args += ["--list", out / "val_list.txt"]
    else:
        args += ["--out-dir", out / "val"] + (["--symlink"] if mode == "symlink" else [])
    for _ in range(2):  # the second run must neither fail nor duplicate anything
        assert _run(args) == 0
    if mode == "list":
        lines = (out / "val_list.txt").read_text().splitlines()
        assert lines[0] == f"val/{_name(1)} 2" and len(lines) == 6  # relative to the parent of the raw folder
        ds = build_dataset({"name": "ImageList", "root": raw.parent, "list_file": out / "val_list.txt"})
    else:
        files = sorted((d, f) for d in os.listdir(out / "val") for f in os.listdir(out / "val" / d))
        assert len(files) == 6 and sorted(os.listdir(out / "val")) == CLASSES
        first = out / "val" / "n00000003" / _name(1)
        assert first.is_symlink() == (mode == "symlink") and os.path.samefile(first, raw / _name(1))
        ds = build_dataset({"name": "ImageNet", "root": out, "split": "val", "num_classes": 3})
    _check_dataset(ds)


def test_relabel_moves_copy_fallback_and_shipped_classes(raw, tmp_path, monkeypatch, capsys):
    # real ImageNet-1k wnids with the shipped class list: labels are indices into the 1000 sorted wnids
    wnids = imagenet_wnids()
    assert prep.shipped_wnids() == wnids
    pick = {1: wnids[0], 2: wnids[1], 3: wnids[999], 4: wnids[1], 5: wnids[0], 6: wnids[999]}
    lab = tmp_path / "labels.txt"
    lab.write_text("".join(f"{_name(i)} {w}\n" for i, w in pick.items()))
    assert _run([raw, "--labels", lab, "--list", tmp_path / "l.txt", "--list-root", raw]) == 0
    assert (tmp_path / "l.txt").read_text().splitlines()[:3] == [f"{_name(1)} 0", f"{_name(2)} 1", f"{_name(3)} 999"]
    out = tmp_path / "folders"
    assert _run([raw, "--labels", lab, "--out-dir", out]) == 0
    # labels fixed upstream: image 1 now belongs to wnids[1]; it must move, not be duplicated
    pick[1] = wnids[1]
    lab.write_text("".join(f"{_name(i)} {w}\n" for i, w in pick.items()))
    capsys.readouterr()
    assert _run([raw, "--labels", lab, "--out-dir", out]) == 0
    assert "5 already in place" in capsys.readouterr().out
    assert sorted(os.listdir(out / wnids[0])) == [_name(5)]
    assert sorted(os.listdir(out / wnids[1])) == [_name(1), _name(2), _name(4)]

    # hard links refused (another file system): copies, kept on re-run
    def no_link(*a):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    copied = tmp_path / "copied"
    assert _run([raw, "--labels", lab, "--out-dir", copied]) == 0
    assert "6 copied" in capsys.readouterr().out
    dst = copied / wnids[1] / _name(1)
    assert not os.path.samefile(dst, raw / _name(1)) and dst.read_bytes() == (raw / _name(1)).read_bytes()
    assert _run([raw, "--labels", lab, "--out-dir", copied]) == 0
    assert "6 already in place" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, match",
    [
        ("no-folder", "raw validation folder not found"),
        ("bad-line", "val_list.txt:2: expected 'FILENAME WNID' or 'FILENAME LABEL'"),
        ("bad-devkit", "gt.txt:3: expected an ILSVRC2012_ID"),
        ("no-meta", "pass the devkit's meta.mat"),
        ("missing-image", "val_list.txt:2: image 'ILSVRC2012_val_00000042.JPEG' not found in"),
        ("out-of-range", "val_list.txt:1: label 3 outside the class range 0..2"),
        ("unknown-wnid", "val_list.txt:2: unknown wnid 'n09999999'"),
        ("bad-csv", "LOC_val_solution.csv:3: expected 'ImageId,PredictionString'"),
        ("conflict", "val_list.txt:2: image 'ILSVRC2012_val_00000001.JPEG' labelled twice"),
    ],
)
def test_user_errors_name_the_file_and_line(raw, tmp_path, capsys, case, match):
    lst, src = tmp_path / "val_list.txt", raw
    extra = []
    if case == "no-folder":
        lst.write_text(f"{_name(1)} 0\n")
        src = tmp_path / "nowhere"
    elif case == "bad-line":
        lst.write_text(f"{_name(1)} 0\n{_name(2)}\n")
    elif case == "bad-devkit":
        extra = ["--format", "devkit", "--meta", _labels(tmp_path, "devkit-map")[-1]]
        lst = tmp_path / "gt.txt"
        lst.write_text("1\n2\nthree\n")
    elif case == "no-meta":
        lst = tmp_path / "gt.txt"
        lst.write_text("1\n2\n")
    elif case == "missing-image":
        lst.write_text(f"{_name(1)} 0\n{_name(42)} 1\n")
    elif case == "out-of-range":
        lst.write_text(f"{_name(1)} 3\n")
    elif case == "unknown-wnid":
        lst.write_text(f"{_name(1)} n00000001\n{_name(2)} n09999999\n")
    elif case == "bad-csv":
        lst = tmp_path / "LOC_val_solution.csv"
        lst.write_text(f"ImageId,PredictionString\n{_name(1)[:-5]},n00000001 1 2 3 4\n{_name(2)[:-5]},\n")
    elif case == "conflict":
        lst.write_text(f"{_name(1)} 0\n{_name(1)} 1\n")
    args = [src, "--labels", lst, "--classes", tmp_path / "classes.txt", "--list", tmp_path / "o.txt", *extra]
    assert _run(args) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o.txt").exists()


def test_command_line(raw, tmp_path):
    args = [sys.executable, "tools/prepare_imagenet.py", str(raw), *map(str, _labels(tmp_path, "text-index"))]
    res = subprocess.run(
        [*args, "--classes", str(tmp_path / "classes.txt"), "--out-dir", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "6 images in 3 of 3 classes" in res.stdout and "6 hard-linked" in res.stdout
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--out-dir" in res.stderr
