"""Sort a raw facial-expression dataset into out/train/<emotion>/ and out/test/<emotion>/.

Three layouts are recognised: per-emotion folders (optionally under Training/Testing), an images
folder with an index CSV (`image`, `emotion` columns), and FER2013's fer2013.csv (`emotion`, `pixels`,
`Usage`). Source files are only read, never moved; the output is built in a temporary folder and
renamed into place, so an interrupted run leaves nothing half-written.
"""

import os
from collections import defaultdict
from csv import Error as CsvError
from csv import Sniffer
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_analyzer import config
from emotion_analyzer.common.cli import progress
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.images import is_image_name
from emotion_analyzer.data.labels import canonical_emotion, unknown_label_error
from emotion_analyzer.common.cli import MAX_LISTED
from emotion_analyzer.data.sorted_folders import write_output

SPLIT_NAMES = {
    "train": config.TRAIN_SPLIT, "training": config.TRAIN_SPLIT,
    "test": config.TEST_SPLIT, "testing": config.TEST_SPLIT,
    "publictest": config.TEST_SPLIT, "privatetest": config.TEST_SPLIT,
    "val": "validation", "valid": "validation", "validation": "validation",
}
# A source's validation folder: the test split when it has no test folder (Kaggle's train/validation
# layout), else part of train, since training.py holds out its own validation split from train.
VALIDATION_SPLIT = "validation"
CSV_DELIMITERS = ",;\t|"
MAX_FOLDER_DEPTH = 4


@dataclass
class CleanResult:
    layout: str
    categories: list
    counts: dict                # {split: {emotion: files written}}
    skipped: list               # (file or row, reason)
    made_split: bool            # the test split was drawn here (--test-size), not taken from the source
    from_validation: int = 0    # images of the source's validation folders...
    validation_split: str = ""  # ...and the split they went to
    votes: tuple | None = None  # (images with the crowd's votes, images without) when a votes file was given


@dataclass
class Item:
    """One labelled image to write: read from `path`, or encoded from `pixels` (fer2013.csv)."""
    emotion: str
    name: str
    split: str | None = None
    path: Path | None = None
    pixels: np.ndarray | None = None
    key: object = None          # what a votes file calls it: its path under the source, or its fer2013.csv row
    votes: np.ndarray | None = None


@dataclass
class Collected:
    layout: str
    items: list = field(default_factory=list)
    # (file or row, reason) for everything not used, so it can be counted and shown.
    skipped: list = field(default_factory=list)
    root: Path | None = None    # the folder items' keys are relative to
    rows: int = 0               # fer2013.csv's rows, for a votes file that lines up with them


def split_of(name):
    return SPLIT_NAMES.get(name.strip().lower().replace(" ", "").replace("_", ""))


def csv_delimiter(path):
    """The delimiter of a CSV's header line: comma, semicolon, tab or bar, as csv.Sniffer finds it."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next((line for line in handle if line.strip() and not line.startswith("#")), "")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    try:
        return Sniffer().sniff(header, delimiters=CSV_DELIMITERS).delimiter
    except CsvError:
        return ","  # one column, or none: the column check names what is missing


def _csv_columns(path):
    try:
        header = pd.read_csv(path, nrows=0, comment="#", sep=csv_delimiter(path))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    return {c.strip().lower(): c for c in header.columns}


def find_csvs(source):
    if source.is_file():
        return [source]
    return sorted(p for pattern in ("*.csv", "*/*.csv") for p in source.glob(pattern) if p.is_file())


def detect_layout(source):
    """('fer2013', csv) / ('index', csv) / ('folders', source) for what lies at `source`."""
    if not source.exists():
        raise UserError(f"source {source} does not exist. Pass the dataset folder with --source PATH.")
    csvs = find_csvs(source)
    for csv in csvs:
        columns = _csv_columns(csv)
        if {"emotion", "pixels"} <= columns.keys():
            return "fer2013", csv
    for csv in csvs:
        columns = _csv_columns(csv)
        if {"image", "emotion"} <= columns.keys():
            return "index", csv
    if source.is_file():
        raise UserError(
            f"{source}: a CSV needs 'image' and 'emotion' columns (an index) or 'emotion' and 'pixels'"
            f" (fer2013.csv); it has {', '.join(_csv_columns(source)) or 'none'}"
        )
    return "folders", source


def collect_folders(source, mapping, excluded):
    """Per-emotion folders anywhere up to a few levels down, keeping a Training/Testing split."""
    found = Collected("per-emotion folders")
    unknown, seen = set(), set()
    for root, dirs, files in os.walk(source):
        root = Path(root)
        rel_parts = root.relative_to(source).parts
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if len(rel_parts) < MAX_FOLDER_DEPTH else []
        if not rel_parts:
            continue
        label = rel_parts[-1]
        images = [f for f in sorted(files) if is_image_name(f)]
        emotion = canonical_emotion(label, mapping)
        if emotion is None:
            if images and split_of(label) is None:
                unknown.add(label)
            continue
        seen.add(label)
        if emotion in excluded:
            continue
        splits = {split_of(part) for part in rel_parts[:-1]} - {None}
        if len(splits) > 1:
            raise UserError(f"{root}: lies under both a training and a testing folder; cannot tell its split")
        split = splits.pop() if splits else None
        for name in sorted(files):
            path = root / name
            if name.startswith("."):
                continue
            if not is_image_name(name):
                found.skipped.append((path, "not an image file"))
                continue
            found.items.append(Item(emotion, name, split, path=path, key=path.relative_to(source).as_posix()))
    found.root = source
    if unknown:
        raise unknown_label_error(unknown, seen | unknown, f"{source}")
    if not found.items:
        raise UserError(
            f"no images found under {source}: expected per-emotion folders (angry/, happy/, ...),"
            " an index CSV with 'image' and 'emotion' columns, or fer2013.csv"
        )
    splits = {item.split for item in found.items}
    if None in splits and len(splits) > 1:
        raise UserError(f"{source}: some emotion folders sit under Training/Testing and some do not; use one layout")
    return found


def _image_lookup(folder):
    """({path relative to `folder`: path}, {file name: [paths]}) of every image under `folder`."""
    by_path, by_name = {}, defaultdict(list)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_image_name(path):
            by_path[path.relative_to(folder).as_posix()] = path
            by_name[path.name].append(path)
    return by_path, by_name


def find_indexed_image(image, by_path, by_name, csv, image_root):
    """The one file an index row names: by its relative path, else by a file name found only once."""
    if image in by_path:
        return by_path[image]
    matches = by_name.get(Path(image).name, [])
    if len(matches) > 1:
        shown = ", ".join(p.relative_to(image_root).as_posix() for p in matches[:MAX_LISTED])
        raise UserError(f"{csv}: '{image}' matches {len(matches)} files under {image_root} ({shown}); name it by its"
                        " path relative to that folder in the index")
    return matches[0] if matches else None


def _read_csv(csv, needed):
    columns = _csv_columns(csv)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise UserError(f"{csv}: missing column(s) {', '.join(missing)}; it has {', '.join(columns)}")
    try:
        frame = pd.read_csv(csv, comment="#", dtype=str, keep_default_na=False, skipinitialspace=True,
                            sep=csv_delimiter(csv))
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{csv}: could not be parsed as a CSV ({exc})") from None
    return frame.rename(columns={columns[c]: c for c in needed})


def collect_index(csv, image_root, mapping, excluded):
    """An index CSV (image, emotion) naming images anywhere under `image_root` (the source folder)."""
    found = Collected(f"index CSV {csv.name}")
    frame = _read_csv(csv, ("image", "emotion"))
    frame["image"] = frame["image"].str.strip()
    frame["label"] = frame["emotion"].str.strip()
    frame["canonical"] = [canonical_emotion(label, mapping) for label in frame["label"]]
    unknown = set(frame.loc[frame["canonical"].isna() & (frame["label"] != ""), "label"])
    if unknown:
        raise unknown_label_error({u.lower() for u in unknown}, {s.lower() for s in frame["label"]}, str(csv))
    for row in frame.loc[(frame["label"] == "") | (frame["image"] == "")].itertuples():
        found.skipped.append((f"{csv.name} row {row.Index + 2}", "empty image or emotion"))
    frame = frame.loc[(frame["label"] != "") & (frame["image"] != "")]

    labels_per_image = frame.groupby("image")["canonical"].nunique()
    for image in labels_per_image.index[labels_per_image > 1]:
        found.skipped.append((image, f"listed in {csv.name} with conflicting emotions"))
    frame = frame.loc[frame["image"].map(labels_per_image) == 1]
    duplicated = frame.duplicated(subset=["image"])
    for image in frame.loc[duplicated, "image"]:
        found.skipped.append((image, f"listed twice in {csv.name} (kept once)"))
    frame = frame.loc[~duplicated]

    by_path, by_name = _image_lookup(image_root)
    for image, emotion in zip(frame["image"], frame["canonical"]):
        path = find_indexed_image(image, by_path, by_name, csv, image_root)
        if path is None:
            found.skipped.append((image, f"named in {csv.name} but not found under {image_root}"))
        elif emotion not in excluded:
            found.items.append(Item(emotion, path.name, None, path=path, key=path.relative_to(image_root).as_posix()))
    found.root = image_root
    if not found.items:
        raise UserError(f"{csv}: none of its {len(frame):,} rows names an image found under {image_root}")
    return found


def collect_fer2013(csv, mapping, excluded):
    """fer2013.csv: numeric emotion codes, 48x48 space-separated pixels, Usage = split."""
    found = Collected(f"FER2013 CSV {csv.name}")
    columns = _csv_columns(csv)
    needed = ("emotion", "pixels") + (("usage",) if "usage" in columns else ())
    frame = _read_csv(csv, needed)
    pixel_count = config.IMAGE_SIZE * config.IMAGE_SIZE
    unknown = set()
    for row in progress(frame.itertuples(), total=len(frame), desc="reading fer2013.csv", unit="row"):
        where = f"{csv.name} row {row.Index + 2}"
        label = row.emotion.strip()
        if label.isdigit() and label not in mapping:
            emotion = config.FER2013_CODES.get(int(label))
        else:  # a name, or a code the user remapped with --map (which wins)
            emotion = canonical_emotion(label, mapping)
        if emotion is None:
            unknown.add(label)
            continue
        if emotion in excluded:
            continue
        try:
            pixels = np.array(row.pixels.split(), dtype=np.int32)
        except ValueError:
            found.skipped.append((where, "pixels are not numbers"))
            continue
        if pixels.size != pixel_count or pixels.min() < 0 or pixels.max() > 255:
            found.skipped.append((where, f"expected {pixel_count} pixel values 0-255, got {pixels.size}"))
            continue
        split = split_of(row.usage) if "usage" in needed else None
        image = pixels.astype(np.uint8).reshape(config.IMAGE_SIZE, config.IMAGE_SIZE)
        found.items.append(Item(emotion, f"{row.Index:05d}.png", split, pixels=image, key=row.Index))
    found.rows = len(frame)
    if unknown:
        raise unknown_label_error(unknown, set(frame["emotion"].str.strip()), str(csv))
    if not found.items:
        raise UserError(f"{csv}: no usable rows")
    return found


def assign_stratified_split(items, test_size, seed):
    """Give every item a split: `test_size` of each emotion goes to test, chosen with `seed`."""
    if not 0 < test_size < 1:
        raise UserError(f"--test-size {test_size}: expected a fraction between 0 and 1, such as 0.2")
    rng = np.random.default_rng(seed)
    by_emotion = defaultdict(list)
    for item in items:
        by_emotion[item.emotion].append(item)
    for group in by_emotion.values():
        order = rng.permutation(len(group))
        n_test = int(round(len(group) * test_size))
        for rank, index in enumerate(order):
            group[index].split = config.TEST_SPLIT if rank < n_test else config.TRAIN_SPLIT


def collect(source, mapping, excluded):
    layout, where = detect_layout(source)
    if layout == "fer2013":
        return collect_fer2013(where, mapping, excluded)
    if layout == "index":
        return collect_index(where, source if source.is_dir() else where.parent, mapping, excluded)
    return collect_folders(where, mapping, excluded)


def attach_votes(found, votes_path):
    """Give each collected item its votes from `votes_path`; return (items with votes, items without).

    A votes file keyed by path must name only images under the source (else it belongs to another copy
    of the dataset); FER+'s fer2013new.csv must have fer2013.csv's rows."""
    from emotion_analyzer.data.votes import read_votes_by_path, read_votes_by_row

    if found.rows:
        votes = read_votes_by_row(votes_path, found.rows)
    else:
        votes = read_votes_by_path(votes_path)
        absent = [name for name in votes if not (found.root / name).is_file()]
        if absent:
            raise UserError(f"--votes {votes_path}: {len(absent):,} of its {len(votes):,} images are not under"
                            f" {found.root} (first: {absent[0]}): give the votes file of this copy of the dataset")
    for item in found.items:
        item.votes = votes.get(item.key)
    with_votes = sum(item.votes is not None for item in found.items)
    return with_votes, len(found.items) - with_votes


def clean_dataset(source, out, mapping=None, excluded=(), test_size=config.DEFAULT_TEST_SIZE,
                  seed=config.DEFAULT_SEED, force=False, votes=None):
    """Sort `source` into `out`, with the crowd's `votes` (a votes file) when given; return a CleanResult."""
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise UserError(f"--out {out} lies inside --source {source}; choose an output folder outside the raw data")
    found = collect(source, mapping or {}, set(excluded))
    coverage = attach_votes(found, Path(votes)) if votes else None
    from_validation = [item for item in found.items if item.split == VALIDATION_SPLIT]
    validation_split = (config.TRAIN_SPLIT if any(item.split == config.TEST_SPLIT for item in found.items)
                        else config.TEST_SPLIT)
    for item in from_validation:
        item.split = validation_split
    made_split = any(item.split is None for item in found.items)
    if made_split:
        assign_stratified_split(found.items, test_size, seed)
    categories = sorted({item.emotion for item in found.items})
    if len(categories) < 2:
        raise UserError(f"{source}: only one emotion ({categories[0]}) left to classify; need at least two")
    description = {"source": str(source), "layout": found.layout}
    if coverage:
        description["votes"] = {"file": str(votes), "faces_with_votes": coverage[0], "faces_without": coverage[1]}
    written, counts = write_output(found.items, out, categories, force, description, with_votes=bool(coverage))
    return CleanResult(found.layout, categories, counts, found.skipped + written, made_split, len(from_validation),
                       validation_split, coverage)
