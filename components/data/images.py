"""Image files a manifest names (``data.input.kind: image``), decoded once by ``prepare``.

A manifest is a table (CSV or Parquet) with one column of image paths, relative to the
manifest's own directory, and the label columns: class ids and values as they are, and for
a ``segmentation`` or ``depth`` task a column of mask or depth-map files (PNG; depth in
16-bit millimetres, 0 where there is no reading). Every image is converted to
``data.input.channels`` and resized and centre-cropped to ``data.image_size``
(``PIL.ImageOps.fit``), its masks and depth maps alike by nearest neighbour.

``prepare`` writes each split's images into one uint8 array file, ``<split>.images.npy``
(rows, channels, side, side), a row at a time, and training reads it memory-mapped: the
operating system pages in the batches a step touches, so the images are never all in
memory. A file that is missing, not an image, or a mask of another size than its image is
a validation error naming the row, the column and the file.

Example::

    >>> import tempfile
    >>> from PIL import Image
    >>> with tempfile.TemporaryDirectory() as scratch:
    ...     Image.new("RGB", (40, 20), (255, 0, 0)).save(f"{scratch}/wide.png")
    ...     image = read_image(Path(scratch) / "wide.png", size=16, channels="rgb")
    >>> image.shape, image[:, 8, 8].tolist()
    ((3, 16, 16), [255, 0, 0])
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from components.config.data import CHANNEL_COUNTS

#: suffix of a split's decoded images under ``data.dir``
IMAGES_SUFFIX = ".images.npy"
#: a depth PNG's unit: millimetres, read as metres
DEPTH_PNG_SCALE = 1000.0
#: failing rows a report shows per rule
SHOWN = 5

LabelFile = Literal["mask", "depth"]


def images_path(data_dir: str | Path, split: str) -> Path:
    """Where ``prepare`` keeps ``split``'s decoded images."""
    return Path(data_dir) / f"{split}{IMAGES_SUFFIX}"


def read_image(source: Path | bytes, size: int, channels: str) -> np.ndarray:
    """One image file (or its bytes) as a (channels, size, size) uint8 array."""
    return read_image_and_size(source, size, channels)[0]


def read_image_and_size(source: Path | bytes, size: int, channels: str) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`read_image`, and the file's own width and height (its masks must have them)."""
    from PIL import Image, ImageOps

    with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
        original = image.size
        converted = image.convert("RGB" if channels == "rgb" else "L")
    fitted = np.asarray(ImageOps.fit(converted, (size, size), Image.Resampling.BILINEAR))
    return (fitted.transpose(2, 0, 1) if fitted.ndim == 3 else fitted[None]), original


def read_label_file(path: Path, kind: LabelFile, size: int, image_size: tuple[int, int]) -> np.ndarray:
    """A mask (class ids) or depth map (metres, NaN without a reading) as a flat array of
    ``size``², cropped and resized as its image was; a file of another size than its image
    raises ``ValueError``."""
    from PIL import Image, ImageOps

    with Image.open(path) as label:
        if label.size != image_size:
            raise ValueError(f"is {label.size[0]}x{label.size[1]}, its image {image_size[0]}x{image_size[1]}")
        fitted = np.asarray(ImageOps.fit(label, (size, size), Image.Resampling.NEAREST))
    if kind == "mask":
        return fitted.reshape(-1).astype(np.int64)
    return depth_metres(fitted).reshape(-1)


def depth_metres(millimetres: np.ndarray) -> np.ndarray:
    """A depth PNG's values (millimetres, 0 where the sensor has no reading) in metres, NaN
    without a reading."""
    values = millimetres.astype(np.float64)
    return np.where(values > 0, values / DEPTH_PNG_SCALE, np.nan)


@dataclass
class _Failures:
    """Failing rows by (column, rule): the row's id and file, for the report."""

    rows: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, column: str, rule: str, example: str) -> None:
        self.rows.setdefault((column, rule), []).append(example)


def decode_split(
    frame: pd.DataFrame,
    column: str,
    label_files: dict[str, LabelFile],
    size: int,
    channels: str,
    base: Path,
    out: Path,
) -> tuple[pd.DataFrame, dict[tuple[str, str], list[str]]]:
    """Decodes ``frame``'s images (paths in ``column``, relative to ``base``) into the array
    file ``out``, and its mask and depth files (``label_files``: column → kind) into flat
    maps in their columns; a row without a label file keeps an empty label. Returns the
    frame and the failing rows by (column, rule)."""
    failures = _Failures()
    depth = CHANNEL_COUNTS[channels]
    out.parent.mkdir(parents=True, exist_ok=True)
    array = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=(len(frame), depth, size, size))
    labels: dict[str, list[object]] = {name: [] for name in label_files}
    ids = frame["id"].astype(str).tolist() if "id" in frame.columns else [str(i) for i in range(len(frame))]
    for row, (row_id, relative) in enumerate(zip(ids, frame[column])):
        path = base / str(relative)
        original: tuple[int, int] | None
        try:
            array[row], original = read_image_and_size(path, size, channels)
        except FileNotFoundError:
            failures.add(column, "image_file_exists", f"id={row_id}: {path} not found")
            original = None
        except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
            failures.add(column, "readable_image_file", f"id={row_id}: {path} ({type(error).__name__})")
            original = None
        for name, kind in label_files.items():
            value = frame[name].iat[row]
            if value is None or (isinstance(value, float) and np.isnan(value)) or original is None:
                labels[name].append(None)
                continue
            label_path = base / str(value)
            try:
                labels[name].append(read_label_file(label_path, kind, size, original))
            except FileNotFoundError:
                failures.add(name, f"{kind}_file_exists", f"id={row_id}: {label_path} not found")
                labels[name].append(None)
            except ValueError as error:
                failures.add(name, f"{kind}_size_matches_its_image", f"id={row_id}: {label_path} {error}")
                labels[name].append(None)
            except OSError as error:
                failures.add(name, f"readable_{kind}_file", f"id={row_id}: {label_path} ({type(error).__name__})")
                labels[name].append(None)
    array.flush()
    del array
    decoded = frame.assign(
        **{name: pd.Series(values, index=frame.index, dtype=object) for name, values in labels.items()}
    )
    return decoded, failures.rows


#: a request column of base64 image files, which an image model (and a pixels one) reads instead of paths
ENCODED_IMAGE_COLUMN = "image_base64"


class UnreadableImages(ValueError):
    """Rows of a request whose image could not be read: their positions and why."""


def image_bytes(cell: object) -> bytes:
    """A request cell's image file: bytes as they are, else base64 text (a ``data:`` URL's
    prefix dropped); text that is not base64 raises ``binascii.Error``."""
    import base64

    return cell if isinstance(cell, bytes) else base64.b64decode(str(cell).split(",")[-1], validate=True)


def encode_images(frame: pd.DataFrame, column: str, size: int, channels: str) -> np.ndarray:
    """The images of ``frame`` as (rows, channels, size, size) uint8: from the base64 files
    of its ``image_base64`` column when it has one (a served request), else from the paths in
    ``column``. Unreadable ones raise :class:`UnreadableImages` naming their rows (the
    frame's index: a request's row numbers, also when it is answered in chunks)."""
    import binascii

    encoded = ENCODED_IMAGE_COLUMN in frame.columns
    images, unreadable = [], []
    named = ENCODED_IMAGE_COLUMN if encoded else column
    for position, cell in enumerate(frame[named]):
        try:
            images.append(read_image(image_bytes(cell) if encoded else Path(str(cell)), size, channels))
        except (binascii.Error, OSError, ValueError):
            unreadable.append(position)
    if unreadable:
        what = "base64 PNG or JPEG images" if encoded else "readable image files"
        rows = ", ".join(str(frame.index[position]) for position in unreadable[:SHOWN])
        raise UnreadableImages(f"column {named}: rows {rows} are not {what}")
    depth = CHANNEL_COUNTS[channels]
    return np.stack(images) if images else np.zeros((0, depth, size, size), dtype=np.uint8)
