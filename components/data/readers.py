"""Readers for the file formats a split may come in; each returns one DataFrame row per example.

=================== ========================================================================
``.csv .parquet``   a table, as is
``.conll .txt``     CoNLL-2003 column format: one ``word … tag`` line per token (the tag is the
                    last column), a blank line between sentences, ``-DOCSTART-`` lines skipped
                    → ``tokens`` (list of words), ``tags`` (list of tags)
``.json``           SQuAD v1.1 or v2.0 → ``id``, ``question``, ``context``, ``answer_start``
                    (null when v2.0 marks the question unanswerable), ``answer_text``
``.npz``            arrays ``images`` (N, H, W) and ``masks`` (N, H, W) → ``px_0000`` … and
                    ``mask`` (the flat mask of each image); any other (N,) array becomes a
                    column of that name (image-level labels)
directory           ``images/*.png`` and ``masks/*.png`` paired by file name → as ``.npz``,
                    with ``id`` the file stem; an optional ``labels.csv`` adds columns by ``id``,
                    and an optional ``depth/*.png`` (16-bit, millimetres, 0 where the sensor
                    has no reading, as NYUv2 and KITTI store it) → ``depth``, the flat depth
                    map in metres (NaN without a reading)
=================== ========================================================================

Images are read as 8-bit greyscale; they must be ``data.canvas_size`` pixels square.
Training takes the first answer of each SQuAD question (dev files list several).

Example::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     path = Path(scratch) / "train.conll"
    ...     _ = path.write_text("EU NNP B-ORG\\nrejects VBZ O\\n")
    ...     read_split_file(path).to_dict("records")
    [{'tokens': ['EU', 'rejects'], 'tags': ['B-ORG', 'O']}]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.encoders import pixel_columns
from components.data.images import depth_metres

CONLL_SUFFIXES = (".conll", ".txt")


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV table. pandas writes a lone carriage return inside a text unquoted, and its own
    reader then ends the row there (a tweet table comes back with four rows too many): a file
    whose lines end in a bare newline is read with that as the only line end."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    bare_newlines = b"\n" in head and b"\r\n" not in head
    return pd.read_csv(path, lineterminator="\n" if bare_newlines else None)


TABLE_READERS = {".csv": read_csv, ".parquet": pd.read_parquet}
VALID_FORMATS = ".csv, .parquet, .conll, .txt, .json (SQuAD), .npz, or a directory of images/ and masks/ PNG files"
MASK_COLUMN = "mask"
DEPTH_COLUMN = "depth"


class FileFormatError(ValueError):
    """A split file that cannot be read as its format says: ``file`` and what is wrong."""

    def __init__(self, file: object, detail: str) -> None:
        self.file, self.detail = str(file), detail
        super().__init__(f"{file}: {detail}")


def read_split_file(path: Path, canvas_size: int | None = None) -> pd.DataFrame:
    """The examples in ``path``, read by its suffix (or as a PNG directory)."""
    if not path.exists():
        raise FileFormatError(path, "not found")
    if path.is_dir():
        return read_png_dir(path, canvas_size)
    suffix = path.suffix.lower()
    if suffix in TABLE_READERS:
        try:
            return TABLE_READERS[suffix](path)
        except Exception as error:  # a corrupt table is bad input, not a crash
            raise FileFormatError(path, f"not a readable {suffix} table: {str(error)[:200]}") from None
    if suffix in CONLL_SUFFIXES:
        return read_conll(path)
    if suffix == ".json":
        return read_squad(path)
    if suffix == ".npz":
        return read_npz(path, canvas_size)
    raise FileFormatError(path, f"unknown format {suffix!r}; valid: {VALID_FORMATS}")


def read_conll(path: Path) -> pd.DataFrame:
    """A CoNLL-2003 file: one row per sentence with its words and tags."""
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(fields) < 2:
            raise FileFormatError(f"{path}:{number}", f"a token line needs a word and a tag, got {line!r}")
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        sentences.append((words, tags))
    return pd.DataFrame({"tokens": [s[0] for s in sentences], "tags": [s[1] for s in sentences]})


def read_squad(path: Path) -> pd.DataFrame:
    """A SQuAD v1.1/v2.0 file: one row per question, with its first answer."""
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        rows = [
            _squad_row(paragraph, qa)
            for article in articles
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as error:
        raise FileFormatError(
            path, f"not SQuAD JSON (data → paragraphs → context, qas → id, question, answers): {error!r}"
        ) from None
    frame = pd.DataFrame(rows, columns=["id", "question", "context", "answer_start", "answer_text"])
    return frame.astype({"answer_start": "Int64"})


def _squad_row(paragraph: dict, qa: dict) -> dict:
    answers = [] if qa.get("is_impossible") else qa["answers"]
    first = answers[0] if answers else None
    return {
        "id": str(qa["id"]),
        "question": qa["question"],
        "context": paragraph["context"],
        "answer_start": None if first is None else int(first["answer_start"]),
        "answer_text": "" if first is None else first["text"],
    }


def images_frame(images: np.ndarray, masks: np.ndarray, source: str, canvas_size: int | None) -> pd.DataFrame:
    """Images and masks as pixel columns and one flat mask per row."""
    if images.ndim != 3 or images.shape != masks.shape:
        raise FileFormatError(source, f"images and masks must both be (N, H, W); got {images.shape} and {masks.shape}")
    side = images.shape[1]
    if images.shape[2] != side or (canvas_size is not None and side != canvas_size):
        raise FileFormatError(
            source, f"images are {images.shape[1]}x{images.shape[2]}; data.canvas_size is {canvas_size}"
        )
    frame = pd.DataFrame(images.reshape(len(images), -1).astype(np.uint8), columns=pixel_columns(side))
    frame[MASK_COLUMN] = list(masks.reshape(len(masks), -1).astype(np.int64))
    return frame


def read_npz(path: Path, canvas_size: int | None) -> pd.DataFrame:
    """Arrays ``images`` and ``masks`` (and any (N,) label arrays) of one ``.npz`` file."""
    arrays = np.load(path)
    missing = {"images", "masks"} - set(arrays.files)
    if missing:
        raise FileFormatError(path, f"missing array(s) {sorted(missing)}; an image file holds images and masks")
    frame = images_frame(arrays["images"], arrays["masks"], str(path), canvas_size)
    for name in set(arrays.files) - {"images", "masks"}:
        if arrays[name].shape != (len(frame),):
            raise FileFormatError(path, f"array {name!r} is {arrays[name].shape}; label arrays are ({len(frame)},)")
        frame[name] = arrays[name]
    return frame


def read_png_dir(path: Path, canvas_size: int | None) -> pd.DataFrame:
    """``images/*.png`` and ``masks/*.png`` paired by name, plus an optional ``labels.csv``."""
    from PIL import Image

    images = sorted((path / "images").glob("*.png"))
    if not images:
        raise FileFormatError(path, "no images/*.png; an image directory holds images/ and masks/")
    unpaired = [image.name for image in images if not (path / "masks" / image.name).exists()]
    if unpaired:
        raise FileFormatError(path, f"no mask in masks/ for {', '.join(unpaired[:5])}")
    pixels = np.stack([np.asarray(Image.open(image).convert("L")) for image in images])
    masks = np.stack([np.asarray(Image.open(path / "masks" / image.name)) for image in images])
    frame = images_frame(pixels, masks, str(path), canvas_size)
    frame.insert(0, "id", [image.stem for image in images])
    if (path / "depth").is_dir():
        frame[DEPTH_COLUMN] = _depth_maps(path, images)
    if (path / "labels.csv").exists():
        labels = pd.read_csv(path / "labels.csv", dtype={"id": str})
        if "id" not in labels.columns:
            raise FileFormatError(path / "labels.csv", "needs an id column (the image file names without .png)")
        frame = frame.merge(labels, on="id", how="left", validate="one_to_one")
    return frame


def _depth_maps(path: Path, images: list[Path]) -> list[np.ndarray]:
    """The flat depth map of each image from ``depth/<name>.png``, in metres; NaN where the
    PNG holds 0 (no reading)."""
    from PIL import Image

    unpaired = [image.name for image in images if not (path / "depth" / image.name).exists()]
    if unpaired:
        raise FileFormatError(path, f"no depth map in depth/ for {', '.join(unpaired[:5])}")
    maps = []
    for image in images:
        millimetres = np.asarray(Image.open(path / "depth" / image.name))
        shape = Image.open(image).size[::-1]
        if millimetres.shape != shape:
            raise FileFormatError(path / "depth" / image.name, f"is {millimetres.shape}; its image is {shape}")
        maps.append(depth_metres(millimetres).reshape(-1))
    return maps
