"""The FER+ crowd's votes: ten people labelled every FER2013 face again (Barsoum et al. 2016).

A votes file is read with the dataset by clean_data.py: for a folder copy, a CSV keyed by each image's
path under the source (`image` plus the ten vote columns, as ferplus-votes.csv); for FER2013's
fer2013.csv, FER+'s own fer2013new.csv, which lines up with it row by row. The sorted set carries the
votes in VOTES_FILE, the prepared set as an (N, 10) array per split (a row of zeros: no votes).
"""

import numpy as np
import pandas as pd

from emotion_analyzer.errors import UserError
from emotion_analyzer.data.prepared import VOTE_COLUMNS

# The sorted set's votes, keyed by each image's path under the output (split/emotion/name).
VOTES_FILE = "votes.csv"
# FER+'s own file: its rows follow fer2013.csv's; an empty image name is a face FER+ left unlabelled.
FERPLUS_NAME_COLUMN = "image name"


def _vote_frame(path, frame):
    """The ten vote columns of `frame` as an int array, refused in one line when they are not votes."""
    columns = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in VOTE_COLUMNS if c.lower() not in columns]
    if missing:
        raise UserError(f"{path}: not a votes file: missing column(s) {', '.join(missing)} (a FER+ votes file has"
                        f" {', '.join(VOTE_COLUMNS)})")
    values = frame[[columns[c.lower()] for c in VOTE_COLUMNS]].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1) | (values < 0).any(axis=1) | (values % 1 != 0).any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{path} row {row + 2}: vote counts must be whole numbers of at least 0, got"
                        f" {', '.join(map(str, frame.iloc[row][[columns[c.lower()] for c in VOTE_COLUMNS]]))}")
    return values.to_numpy(np.int16)


def _read(path):
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable votes CSV ({exc})") from None


def read_votes_by_path(path):
    """{image path under the source: (10,) int votes} from a votes CSV keyed by path."""
    frame = _read(path)
    columns = {c.strip().lower(): c for c in frame.columns}
    if "image" not in columns:
        raise UserError(f"{path}: a votes file for image folders needs an 'image' column (each image's path under"
                        f" --source); it has {', '.join(frame.columns) or 'none'}")
    votes = _vote_frame(path, frame)
    names = frame[columns["image"]].str.strip().str.replace("\\", "/", regex=False)
    repeated = names[names.duplicated()]
    if len(repeated):
        raise UserError(f"{path}: '{repeated.iloc[0]}' has two rows of votes; keep one")
    return dict(zip(names, votes))


def read_votes_by_row(path, rows):
    """{row index: (10,) int votes} from FER+'s fer2013new.csv, which must have `rows` rows (fer2013.csv's)."""
    frame = _read(path)
    if len(frame) != rows:
        raise UserError(f"{path}: {len(frame):,} rows of votes, but fer2013.csv has {rows:,}: FER+'s fer2013new.csv"
                        " lines up with fer2013.csv row by row; give the two files of one release")
    votes = _vote_frame(path, frame)
    columns = {c.strip().lower(): c for c in frame.columns}
    labelled = (frame[columns[FERPLUS_NAME_COLUMN]].str.strip() != "").to_numpy() if FERPLUS_NAME_COLUMN in columns \
        else votes.sum(axis=1) > 0
    return {row: votes[row] for row in np.flatnonzero(labelled)}
