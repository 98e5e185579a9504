"""Sort the flat ILSVRC2012 validation folder into class folders, or write a PaddleClas list file for it.

    # class folders OUT/<wnid>/<file> (hard links, copies where links cannot be made, or --symlink)
    python tools/prepare_imagenet.py RAW_VAL_DIR --labels LABELS --out-dir data/ILSVRC2012/val
    # a list file: one 'relative/path.JPEG label' per line, paths relative to --list-root (default: RAW_VAL_DIR/..)
    python tools/prepare_imagenet.py RAW_VAL_DIR --labels LABELS --list data/ILSVRC2012/val_list.txt

RAW_VAL_DIR holds the 50,000 files ILSVRC2012_val_00000001.JPEG ... LABELS is any of (detected from the content):

  devkit  ILSVRC2012_validation_ground_truth.txt: line i is the 1-based ILSVRC2012_ID of ILSVRC2012_val_<i>.JPEG.
          Needs --meta: the devkit's meta.mat (read with scipy) or a text map with an ID and a wnid on each line
          (e.g. map_clsloc.txt: 'n02119789 1 kit_fox').
  text    'FILENAME WNID' or 'FILENAME LABEL' per line (PaddleClas val_list.txt; a folder part of FILENAME is ignored).
  csv     Kaggle's LOC_val_solution.csv: 'ImageId,PredictionString', the first token of PredictionString is the wnid.

Labels are indices into the sorted class wnids: the 1000 ImageNet-1k wnids shipped in passl/data/imagenet_classes.txt,
or --classes FILE (one wnid per line) for another class set. This is the order of the ImageNet / ImageFolder datasets,
so the folder layout and the list file give every image the same label. Re-running is safe: files already in place are
left alone, files put in another class folder by an earlier run with other labels are moved, the list file is
replaced atomically.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from passl.registry import ConfigError  # noqa: E402

WNID = re.compile(r"^n\d{8}$")
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "passl", "data", "imagenet_classes.txt")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def shipped_wnids() -> List[str]:
    """The 1000 ImageNet-1k wnids shipped with passl, sorted (read from the file: no Paddle import needed)."""
    with open(SHIPPED, encoding="utf-8") as f:
        return [ln.split("\t", 1)[0] for ln in f if ln.strip() and not ln.startswith("#")]


def read_classes(path: Optional[str]) -> List[str]:
    """Sorted class wnids: from ``path`` (one wnid per line, extra columns ignored) or the shipped ImageNet-1k list."""
    if path is None:
        return shipped_wnids()
    if not os.path.isfile(path):
        raise ConfigError(f"classes file not found: {path}")
    wnids = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            wnid = line.split()[0]
            if not WNID.match(wnid):
                raise ConfigError(f"{path}:{n}: expected a wnid such as n01440764, got '{line.strip()}'")
            wnids.append(wnid)
    if not wnids or len(set(wnids)) != len(wnids):
        raise ConfigError(f"{path}: expected one distinct wnid per line, got {len(wnids)} ({len(set(wnids))} distinct)")
    return sorted(wnids)


def read_id_map(path: str) -> Dict[int, str]:
    """ILSVRC2012_ID -> wnid from the devkit's meta.mat (scipy) or a text file with an ID and a wnid per line."""
    if not os.path.isfile(path):
        raise ConfigError(f"--meta file not found: {path}")
    if path.endswith(".mat"):
        try:
            import scipy.io
        except ImportError:
            raise ConfigError(
                f"reading {path} needs scipy (pip install scipy); or pass a text map with 'ILSVRC2012_ID WNID' per "
                f"line (the devkit's data/map_clsloc.txt works) as --meta"
            ) from None
        try:
            synsets = scipy.io.loadmat(path, squeeze_me=True)["synsets"]
            ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
        except Exception as e:
            raise ConfigError(f"{path}: not an ILSVRC2012 devkit meta.mat (need synsets.ILSVRC2012_ID/WNID): {e}")
        return {int(i): str(w) for i, w in zip(ids.ravel(), wnids.ravel())}
    out: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens or line.startswith("#"):
                continue
            wnid = next((t for t in tokens if WNID.match(t)), None)
            num = next((t for t in tokens if t.isdigit()), None)
            if wnid is None or num is None:
                raise ConfigError(f"{path}:{n}: expected an ILSVRC2012_ID and a wnid, got '{line.strip()}'")
            out[int(num)] = wnid
    return out


def detect_format(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        lines = [ln.strip() for ln in f if ln.strip()][:5]
    if not lines:
        raise ConfigError(f"label file {path} is empty")
    if path.lower().endswith(".csv") or "," in lines[0]:
        return "csv"
    if all(ln.isdigit() for ln in lines):
        return "devkit"
    return "text"


def read_labels(path: str, fmt: str, classes: Sequence[str], meta: Optional[str]) -> List[Tuple[str, str, int]]:
    """``(image name as listed, wnid, source line)`` for every labelled image. Names may lack the extension (csv)."""
    if not os.path.isfile(path):
        raise ConfigError(f"label file not found: {path}")
    if fmt == "auto":
        fmt = detect_format(path)
    known = set(classes)

    def check(wnid: str, n: int) -> str:
        if wnid not in known:
            raise ConfigError(
                f"{path}:{n}: unknown wnid '{wnid}': not among the {len(classes)} classes (the ImageNet-1k wnids, "
                f"or --classes FILE when given); pass --classes for another class set"
            )
        return wnid

    out: List[Tuple[str, str, int]] = []
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "devkit":
            if meta is None:
                raise ConfigError(
                    f"{path} holds ILSVRC2012_IDs: pass the devkit's meta.mat (or a text 'ID WNID' map) as --meta"
                )
            id_map = read_id_map(meta)
            for n, line in enumerate(f, 1):
                tok = line.strip()
                if not tok:
                    continue
                if not tok.isdigit():
                    raise ConfigError(f"{path}:{n}: expected an ILSVRC2012_ID (1..1000), got '{tok}'")
                if int(tok) not in id_map:
                    raise ConfigError(f"{path}:{n}: ILSVRC2012_ID {tok} is not in {meta}")
                out.append((f"ILSVRC2012_val_{n:08d}.JPEG", check(id_map[int(tok)], n), n))
        elif fmt == "csv":
            for n, row in enumerate(csv.reader(f), 1):
                if not row or (n == 1 and row[0].strip().lower() in ("imageid", "image_id", "filename")):
                    continue
                tokens = row[1].split() if len(row) >= 2 else []
                if not row[0].strip() or not tokens:
                    raise ConfigError(f"{path}:{n}: expected 'ImageId,PredictionString', got '{','.join(row)}'")
                out.append((row[0].strip(), check(tokens[0], n), n))
        elif fmt == "text":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.strip().rsplit(maxsplit=1)
                if len(parts) != 2:
                    raise ConfigError(f"{path}:{n}: expected 'FILENAME WNID' or 'FILENAME LABEL', got '{line.strip()}'")
                name, label = parts
                if WNID.match(label):
                    wnid = check(label, n)
                elif label.lstrip("-").isdigit():
                    if not 0 <= int(label) < len(classes):
                        raise ConfigError(f"{path}:{n}: label {label} outside the class range 0..{len(classes) - 1}")
                    wnid = classes[int(label)]
                else:
                    raise ConfigError(
                        f"{path}:{n}: expected a wnid or a label index after the file name, got '{label}'"
                    )
                out.append((name, wnid, n))
        else:
            raise ConfigError(f"unknown label format '{fmt}' (auto, devkit, text, csv)")
    if not out:
        raise ConfigError(f"label file {path} labels no images")
    return out


def plan(src: str, labels_path: str, entries: List[Tuple[str, str, int]]) -> Dict[str, str]:
    """Source file name -> wnid, every listed image found in ``src`` (by name, or by stem when listed without one)."""
    if not os.path.isdir(src):
        raise ConfigError(f"raw validation folder not found: {src}")
    files = [e.name for e in os.scandir(src) if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)]
    by_stem: Dict[str, str] = {}
    for name in files:
        by_stem.setdefault(os.path.splitext(name)[0], name)
    names = set(files)
    out: Dict[str, str] = {}
    for listed, wnid, n in entries:
        base = os.path.basename(listed.replace("\\", "/"))
        name = base if base in names else by_stem.get(base) or by_stem.get(os.path.splitext(base)[0])
        if name is None:
            raise ConfigError(f"{labels_path}:{n}: image '{listed}' not found in {src}")
        if out.setdefault(name, wnid) != wnid:
            raise ConfigError(f"{labels_path}:{n}: image '{listed}' labelled twice, as {out[name]} and {wnid}")
    unlabelled = len(names) - len(out)
    if unlabelled:
        print(f"warning: {unlabelled} images in {src} have no label in {labels_path} and are left out", file=sys.stderr)
    return out


WORDS = {
    "link": "hard-linked",
    "copy": "copied",
    "symlink": "symlinked",
    "kept": "already in place",
    "moved": "taken out of another class folder",
}


def _same(src: str, dst: str, mode: str) -> bool:
    if mode == "symlink":
        return os.path.islink(dst) and os.path.realpath(dst) == os.path.realpath(src)
    if not os.path.isfile(dst) or os.path.islink(dst):
        return False
    if os.path.samefile(src, dst):
        return True
    a, b = os.stat(src), os.stat(dst)  # a copy from an earlier run (copy2 keeps the modification time)
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def _place(src: str, dst: str, mode: str) -> str:
    """Put ``src`` at ``dst`` via a temporary name, so an interrupted run never leaves a half-written image."""
    tmp = dst + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    used = mode
    if mode == "symlink":
        os.symlink(os.path.abspath(src), tmp)
    else:
        try:
            os.link(src, tmp)
            used = "link"
        except OSError:  # other file system, or links not allowed: copy
            shutil.copy2(src, tmp)
            used = "copy"
    os.replace(tmp, dst)
    return used


def write_folders(src: str, out_dir: str, mapping: Dict[str, str], mode: str) -> Dict[str, int]:
    """Make OUT/<wnid>/<name> for every image; returns counts of linked / copied / symlinked / kept / moved."""
    counts = {"link": 0, "copy": 0, "symlink": 0, "kept": 0, "moved": 0}
    os.makedirs(out_dir, exist_ok=True)
    for wnid in sorted(set(mapping.values())):
        os.makedirs(os.path.join(out_dir, wnid), exist_ok=True)
    for entry in os.scandir(out_dir):  # images an earlier run (other labels) put in another class folder
        if entry.is_dir() and WNID.match(entry.name):
            for name in os.listdir(entry.path):
                if name in mapping and mapping[name] != entry.name:
                    os.remove(os.path.join(entry.path, name))
                    counts["moved"] += 1
    for name in sorted(mapping):
        s, d = os.path.join(src, name), os.path.join(out_dir, mapping[name], name)
        if os.path.lexists(d) and _same(s, d, mode):
            counts["kept"] += 1
        else:
            counts[_place(s, d, mode)] += 1
    return counts


def write_list(src: str, list_file: str, root: str, mapping: Dict[str, str], classes: Sequence[str]) -> None:
    index = {w: i for i, w in enumerate(classes)}
    rel = os.path.relpath(os.path.abspath(src), os.path.abspath(root))
    prefix = "" if rel == os.curdir else rel.replace(os.sep, "/") + "/"
    lines = [f"{prefix}{name} {index[mapping[name]]}\n" for name in sorted(mapping)]
    os.makedirs(os.path.dirname(os.path.abspath(list_file)), exist_ok=True)
    tmp = f"{list_file}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, list_file)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="the raw validation folder (flat ILSVRC2012_val_*.JPEG files)")
    p.add_argument("--labels", required=True, help="ground-truth file (devkit ground truth, text list or Kaggle csv)")
    p.add_argument("--format", default="auto", choices=["auto", "devkit", "text", "csv"], help="of --labels")
    p.add_argument("--meta", default=None, help="devkit meta.mat or a text 'ILSVRC2012_ID WNID' map (devkit format)")
    p.add_argument("--classes", default=None, help="one wnid per line (default: the 1000 ImageNet-1k classes)")
    p.add_argument("--out-dir", default=None, help="write class folders OUT_DIR/<wnid>/")
    p.add_argument("--symlink", action="store_true", help="symbolic links instead of hard links / copies")
    p.add_argument("--list", default=None, help="write a PaddleClas list file")
    p.add_argument("--list-root", default=None, help="list paths are relative to this (default: the parent of SRC)")
    args = p.parse_args(argv)
    if not args.out_dir and not args.list:
        p.error("give --out-dir (class folders) and/or --list (list file)")
    try:
        classes = read_classes(args.classes)
        mapping = plan(args.src, args.labels, read_labels(args.labels, args.format, classes, args.meta))
        done = []
        if args.out_dir:
            if os.path.abspath(args.out_dir) == os.path.abspath(args.src):
                raise ConfigError("--out-dir must differ from the raw folder")
            counts = write_folders(args.src, args.out_dir, mapping, "symlink" if args.symlink else "link")
            how = ", ".join(f"{v} {WORDS[k]}" for k, v in counts.items() if v)
            done.append(f"{args.out_dir}/<wnid>/ ({how})")
        if args.list:
            write_list(
                args.src, args.list, args.list_root or os.path.dirname(os.path.abspath(args.src)), mapping, classes
            )
            done.append(args.list)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_cls = len(set(mapping.values()))
    print(f"{len(mapping)} images in {n_cls} of {len(classes)} classes -> {'; '.join(done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
