"""FER+ relabelling of FER-2013 (Barsoum et al. 2016): ten crowd votes per image.

Two files carry the votes: `fer2013new.csv`, whose rows line up one to one with `fer2013.csv`
(Usage, Image name, then the votes), and the `label.csv` of each folder that Microsoft's
instructions produce (`FER2013Train/`, `FER2013Valid/`, `FER2013Test/`: image name, face box,
then the same votes). Vote columns: neutral, happiness, surprise, sadness, anger, disgust,
fear, contempt, unknown, NF.

Majority label, as the FER+ paper defines it: the emotion with strictly the most votes; an
image whose top vote is tied, or is contempt, unknown or NF (not a face), or that has no vote
among the seven, is dropped. Soft labels are the vote shares of the seven emotions on the
images that have a majority label (contempt, unknown and NF votes left out).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.errors import DataError
from emolens.labels import EMOTIONS

FERPLUS_COLUMNS: tuple[str, ...] = (
    "Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)
VOTE_COLUMNS = FERPLUS_COLUMNS[2:]
FERPLUS_TO_EMOTION: dict[str, str] = {
    "neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
    "anger": "angry", "disgust": "disgust", "fear": "fear",
}
# Where each of the seven emotion vote columns goes in EMOTIONS order.
_TO_EMOTIONS = np.array([EMOTIONS.index(FERPLUS_TO_EMOTION[c]) for c in VOTE_COLUMNS[:7]])


@dataclass
class FerPlusRow:
    usage: str
    votes: np.ndarray | None  # (10,) in VOTE_COLUMNS order; None when the row is malformed
    error: str = ""
    name: str = ""  # Image name (fer0000000.png); blank on rows judged not a face. Not the row number:
    # Microsoft numbered the images, skipping those rows, so names drift from rows after row 59.


def parse_votes(fields: list[str], where: str) -> tuple[np.ndarray | None, str]:
    """The ten vote counts of one row (both FER+ files), or None and why they are unusable."""
    try:
        votes = np.array([float(v) for v in fields], np.float64)
    except ValueError:
        return None, f"{where}: vote counts {fields} are not all numbers"
    if not np.isfinite(votes).all() or (votes < 0).any():
        return None, f"{where}: vote counts {fields} must be finite and non-negative"
    return votes, ""


def read_ferplus(path: Path) -> list[FerPlusRow]:
    """Every data row of fer2013new.csv, in file order; malformed rows carry an error."""
    rows: list[FerPlusRow] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != FERPLUS_COLUMNS:
            raise DataError(f"{path}: header {header} is not the FER+ layout; expected {','.join(FERPLUS_COLUMNS)}")
        for i, rec in enumerate(reader):
            where = f"{path.name} row {i} (line {i + 2})"
            if len(rec) != len(FERPLUS_COLUMNS):
                rows.append(FerPlusRow("", None, f"{where}: {len(rec)} fields, expected {len(FERPLUS_COLUMNS)}"))
                continue
            votes, error = parse_votes(rec[2:], where)
            rows.append(FerPlusRow(rec[0].strip(), votes, error, name=rec[1].strip()))
    return rows


def ferplus_label(votes: np.ndarray, *, soft: bool) -> tuple[int | None, np.ndarray | None, str]:
    """(label index into EMOTIONS, soft distribution (7,) in EMOTIONS order, reason if dropped)."""
    emotion_votes = votes[:7]
    top = votes.max()
    if top <= 0:
        return None, None, "no votes among the 7 emotions"
    winners = np.flatnonzero(votes == top)
    if len(winners) > 1:
        tied = " and ".join(VOTE_COLUMNS[int(w)] for w in winners)
        return None, None, f"FER+ votes tied between {tied} ({int(top)} each)"
    if winners[0] >= 7:
        return None, None, f"FER+ majority is {VOTE_COLUMNS[int(winners[0])]}"
    label = int(_TO_EMOTIONS[winners[0]])
    if not soft:
        return label, None, ""
    dist = np.zeros(len(EMOTIONS), np.float32)
    dist[_TO_EMOTIONS] = emotion_votes / emotion_votes.sum()
    return label, dist, ""


@dataclass
class LabelCsvRow:
    name: str  # image file name, e.g. fer0032220.png
    votes: np.ndarray | None  # (10,) in VOTE_COLUMNS order; None when the row is malformed
    error: str = ""


def parse_label_csv(data: bytes, where: str) -> list[LabelCsvRow]:
    """Rows of one FER+ `label.csv`: `name,"(x, y, w, h)",<10 vote counts>`, no header.

    `where` names the file in messages (e.g. `FER2013Test/label.csv`). Bytes that are not UTF-8
    spoil only their own row.
    """
    text = data.decode("utf-8-sig", errors="replace")
    rows: list[LabelCsvRow] = []
    for i, rec in enumerate(csv.reader(text.splitlines())):
        if not rec:
            continue
        line = f"{where} line {i + 1}"
        if len(rec) != 2 + len(VOTE_COLUMNS):
            rows.append(LabelCsvRow(rec[0], None, f"{line}: {len(rec)} fields, expected {2 + len(VOTE_COLUMNS)} (name, box, 10 vote counts)"))
            continue
        votes, error = parse_votes(rec[2:], line)
        rows.append(LabelCsvRow(rec[0].strip(), votes, error))
    return rows
