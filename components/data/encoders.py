"""What the backbone reads from a row (``data.input``), and how rows become tensors.

- ``pixels``: columns ``px_0000`` … (``data.canvas_size``²), 0–255 → float (N, 1, H, W)
  in [0, 1]; read by ``cnn`` and ``mlp``.
- ``text``: one text column → token ids (N, max_length), 0 = padding; read by
  ``text_transformer`` and ``hf_encoder``.
- ``tokens``: one column of word lists (CoNLL) → token ids; each word's first sub-word
  carries its tag, the others are ignored by the tagging loss and metric.
- ``text_pair``: two text columns (question, context) → ``[CLS] question [SEP] context
  [SEP]`` ids, the context truncated first; position 0 ([CLS]) stands for "no answer".
- ``features``: numeric columns, standardised, and categorical ones, one-hot → float
  (N, F); missing numbers imputed with a 0/1 missing-indicator column when
  ``data.input.missing`` says so. Fitted by scikit-learn; read by ``mlp``. Columns in
  ``data.input.embed`` become one id each after that dense part (0 missing, 1 unseen,
  then the training values; or a hash bucket), looked up by the network's embeddings.
- ``text`` with ``features``/``categorical``: the token ids, then the encoded columns, in
  one float tensor that the text backbone's ``WithFeatures`` wrapper splits again.

Text is tokenised by a WordPiece tokenizer that HF ``tokenizers`` trains on the training
split only, so nothing about validation or test text leaks into the vocabulary; a
pretrained ``hf_encoder`` brings its own tokenizer instead. Feature standardisation and
imputation also use training statistics, and categories are the training split's values.
``prepare`` writes these files to ``data/encoder/``, versioned with the data and shipped
inside every registered model. With ``data.datasets`` every
dataset has its own input; text inputs share one tokenizer, trained on all their training
rows, and a ``dataset`` column says which input each row carries.

Example::

    >>> frame = pd.DataFrame(0, index=range(2), columns=pixel_columns(36))
    >>> PixelEncoder(canvas_size=36).encode(frame).shape
    torch.Size([2, 1, 36, 36])
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from components.config import TEXT_INPUTS, InputConfig, Params

PIXEL_PREFIX = "px_"
DATASET_COLUMN = "dataset"
ENCODER_DIR = "encoder"
TOKENIZER_FILE = "tokenizer.json"
FEATURES_FILE = "features.skops"  # skops, not pickle: loading runs no code from the file
FEATURE_TYPES_TRUSTED = ["numpy.dtype"]  # the one type skops does not trust by default; scikit-learn's it does
IMPUTED = ("median", "mean", "constant")
MISSING_CATEGORY = "(missing)"
HF_CONFIG_FILE = "config.json"
#: where ``prepare`` ships a pretrained ``hf_backbone``'s config.json, inside the fitted inputs
HF_BACKBONE_DIR = "hf_backbone"
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"  # id 0 is padding: the text backbones mask it
IGNORE = -1  # target of positions and rows a loss skips


def pixel_columns(canvas_size: int) -> list[str]:
    """The pixel column names of a ``canvas_size``² image."""
    return [f"{PIXEL_PREFIX}{i:04d}" for i in range(canvas_size * canvas_size)]


def canvas_side(frame: pd.DataFrame) -> int:
    """The side of the square images whose ``px_`` columns ``frame`` holds."""
    return int(round(sum(str(c).startswith(PIXEL_PREFIX) for c in frame.columns) ** 0.5))


def spec_columns(spec: InputConfig, canvas_size: int) -> list[str]:
    """The columns one input reads."""
    return pixel_columns(canvas_size) if spec.kind == "pixels" else spec.all_columns()


def input_columns(params: Params) -> list[str]:
    """Every column a model reads; with several datasets also ``dataset``."""
    columns = [c for spec in params.data.inputs().values() for c in spec_columns(spec, params.data.canvas_size)]
    if params.data.datasets:
        columns.append(DATASET_COLUMN)
    return list(dict.fromkeys(columns))


def request_frame(params: Params, frame: pd.DataFrame) -> pd.DataFrame:
    """The input columns of ``frame`` as a served model receives them: numbers as doubles,
    since JSON clients may send ints or floats and both convert safely."""
    inputs = frame[input_columns(params)]
    numbers = [
        c
        for spec in params.data.inputs().values()
        if spec.kind == "pixels"
        for c in pixel_columns(params.data.canvas_size)
    ]
    numbers += [c for spec in params.data.inputs().values() if (part := spec.feature_part()) for c in part.columns]
    return inputs.astype(dict.fromkeys(numbers, "float64"))


class InputEncoder(ABC):
    #: the DataFrame columns a model reads (and a served request must send)
    columns: list[str]

    @abstractmethod
    def encode(self, frame: pd.DataFrame) -> Tensor:
        """The rows of ``frame`` as the backbone's input tensor."""

    def image_side(self, frame: pd.DataFrame) -> int:
        """The side of the square images ``frame``'s rows carry, which masks and depth maps share."""
        return canvas_side(frame)


class PixelEncoder(InputEncoder):
    def __init__(self, canvas_size: int) -> None:
        self.canvas_size = canvas_size
        self.columns = pixel_columns(canvas_size)

    def encode(self, frame: pd.DataFrame) -> Tensor:
        pixels = frame[self.columns].to_numpy(dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).reshape(-1, 1, self.canvas_size, self.canvas_size)


class ImageEncoder(InputEncoder):
    """Images from files: the paths of the input's column, or a served request's base64
    ``image_base64`` column, resized and cropped to ``data.image_size`` (``components.data.images``).
    Training reads the images ``prepare`` decoded instead (``<split>.images.npy``)."""

    def __init__(self, spec: InputConfig, size: int) -> None:
        self.column, self.size, self.channels = spec.columns[0], size, spec.channels
        self.columns = [self.column]

    def image_side(self, frame: pd.DataFrame) -> int:
        return self.size

    def encode(self, frame: pd.DataFrame) -> Tensor:
        from components.data.images import encode_images

        return torch.from_numpy(encode_images(frame, self.column, self.size, self.channels)).float() / 255.0


def is_missing(value: object) -> bool:
    """An empty cell: None or NaN (a cell holding a list or array never is)."""
    return value is None or (np.isscalar(value) and pd.isna(value))


def _words(value: Any) -> list[str]:
    return [] if is_missing(value) else [str(w) for w in value]


class TextEncoder(InputEncoder):
    """Token ids of one text column, a column of word lists, or a pair of text columns."""

    def __init__(self, spec: InputConfig, tokenizer_path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.kind = spec.kind
        self.columns = list(spec.columns)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        if self.tokenizer.token_to_id(PAD) != 0:
            raise ValueError(f"{tokenizer_path}: the backbones take token id 0 as padding, but {PAD} is not 0")
        if self.kind == "text_pair" and self.tokenizer.token_to_id(CLS) is None:
            raise ValueError(f"{tokenizer_path}: text_pair input needs {CLS} and {SEP}; run prepare again")
        self.tokenizer.enable_truncation(
            max_length, strategy="only_second" if self.kind == "text_pair" else "longest_first"
        )
        self.tokenizer.enable_padding(pad_id=0, pad_token=PAD, length=max_length)
        self.max_length = max_length

    def encodings(self, frame: pd.DataFrame) -> list:
        """The tokenizer's encodings of the rows: ids, and the word ids and character
        offsets that align word tags and answer spans with tokens."""
        if self.kind == "tokens":
            return self.tokenizer.encode_batch([_words(v) for v in frame[self.columns[0]]], is_pretokenized=True)
        texts = [frame[c].fillna("").astype(str).tolist() for c in self.columns]
        return self.tokenizer.encode_batch(list(zip(*texts)) if self.kind == "text_pair" else texts[0])

    def encode(self, frame: pd.DataFrame) -> Tensor:
        return torch.tensor([encoding.ids for encoding in self.encodings(frame)], dtype=torch.long).reshape(
            len(frame), -1
        )

    def word_tag_targets(self, frame: pd.DataFrame, column: str, tags: list[str]) -> Tensor:
        """Tag index at each word's first sub-word token, ``IGNORE`` elsewhere (other
        sub-words, specials, padding) and on rows without tags."""
        index = {tag: i for i, tag in enumerate(tags)}
        targets = torch.full((len(frame), self.max_length), IGNORE, dtype=torch.long)
        for row, (positions, row_tags) in enumerate(zip(self.first_subwords(frame), frame[column])):
            for position, tag in zip(positions, _words(row_tags)):
                targets[row, position] = index[tag]
        return targets

    def first_subwords(self, frame: pd.DataFrame) -> list[list[int]]:
        """Per row, the token position of each word's first sub-word (words cut off by
        truncation have none)."""
        positions = []
        for encoding in self.encodings(frame):
            seen: set[int] = set()
            row = []
            for position, word in enumerate(encoding.word_ids):
                if word is not None and word not in seen:
                    seen.add(word)
                    row.append(position)
            positions.append(row)
        return positions

    def answer_targets(self, frame: pd.DataFrame, start_column: str, text_column: str) -> Tensor:
        """(start, end) token positions of each answer in the context; (0, 0), the [CLS]
        position, when there is none or truncation cut it off; ``IGNORE`` on unlabeled rows."""
        targets = torch.full((len(frame), 2), IGNORE, dtype=torch.long)
        for row, encoding in enumerate(self.encodings(frame)):
            start, text = frame[start_column].iloc[row], frame[text_column].iloc[row]
            if pd.isna(text):
                continue
            targets[row] = 0
            if pd.isna(start) or not text:
                continue
            first, last = int(start), int(start) + len(str(text)) - 1
            in_context = [
                (position, offsets)
                for position, (sequence, offsets) in enumerate(zip(encoding.sequence_ids, encoding.offsets))
                if sequence == 1
            ]
            starts = [p for p, (a, b) in in_context if a <= first < b]
            ends = [p for p, (a, b) in in_context if a <= last < b]
            if starts and ends:
                targets[row] = torch.tensor([starts[0], ends[0]])
        return targets

    def answer_texts(self, frame: pd.DataFrame, spans: Tensor) -> list[str]:
        """The context text of each predicted (start, end) token span; "" for no answer."""
        answers = []
        for row, (encoding, (start, end)) in enumerate(zip(self.encodings(frame), spans.tolist())):
            context = str(frame[self.columns[1]].iloc[row])
            if start == 0 or end < start or encoding.sequence_ids[start] != 1 or encoding.sequence_ids[end] != 1:
                answers.append("")
            else:
                answers.append(context[encoding.offsets[start][0] : encoding.offsets[end][1]])
        return answers


def feature_frame(frame: pd.DataFrame, spec: InputConfig) -> pd.DataFrame:
    """The feature columns as the fitted transformer reads them: numbers as floats (a
    missing one NaN), one-hot categories as strings (a missing one its own category),
    embedded ones as strings with NaN for missing (their vocabulary gives it its own id)."""
    numbers = frame[spec.columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    categories = {
        c: frame[c].astype("string").fillna(MISSING_CATEGORY).astype(object).to_numpy()
        for c in spec.categorical
        if c not in spec.embed
    }
    embedded = {c: _strings_or_nan(frame[c]) for c in vocabulary_columns(spec)}
    return numbers.assign(**categories, **embedded)


def _strings_or_nan(values: pd.Series) -> np.ndarray:
    named = values.astype("string")
    return named.astype(object).where(named.notna(), np.nan).to_numpy()


def vocabulary_columns(spec: InputConfig) -> list[str]:
    """The embedded columns that get a vocabulary (the others are hashed)."""
    return [c for c in spec.embed if c not in spec.hash_buckets]


#: an embedded column's ids: 0 a missing value, 1 one training never saw, then its values
MISSING_ID, UNSEEN_ID, FIRST_VALUE_ID = 0, 1, 2


def embedding_width(spec: InputConfig, column: str, ids: int) -> int:
    """``data.input.embed``'s width for ``column``; auto: min(50, ceil(1.6 k^0.56)) (fastai's
    ``emb_sz_rule``, capped at 50)."""
    width = spec.embed[column]
    return min(50, math.ceil(1.6 * ids**0.56)) if width == "auto" else width


def hashed_ids(values: pd.Series, buckets: int) -> np.ndarray:
    """Ids FIRST_VALUE_ID-1 .. buckets of ``values`` hashed with pandas' fixed-key SipHash (the
    same in every process, unlike Python's ``hash``); MISSING_ID for a missing value.
    Hand-written because scikit-learn's FeatureHasher gives one-hot columns, not ids."""
    named = values.astype("string")
    hashed = pd.util.hash_array(named.fillna("").to_numpy(dtype=object)) % np.uint64(buckets) + np.uint64(1)
    return np.where(named.isna().to_numpy(), MISSING_ID, hashed.astype(np.int64))


def fit_features(spec: InputConfig, train: pd.DataFrame) -> Any:
    """scikit-learn's imputer, scaler, one-hot encoder and (for embedded columns) ordinal
    encoder, fitted on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numeric = (
        make_pipeline(
            SimpleImputer(
                strategy=spec.missing, fill_value=spec.fill_value, add_indicator=True, keep_empty_features=True
            ),
            StandardScaler(),
        )
        if spec.missing in IMPUTED
        else StandardScaler()
    )
    one_hot = [c for c in spec.categorical if c not in spec.embed]
    vocabulary = OrdinalEncoder(  # shifted by FIRST_VALUE_ID in FeatureEncoder.encode
        handle_unknown="use_encoded_value",
        unknown_value=UNSEEN_ID - FIRST_VALUE_ID,
        encoded_missing_value=MISSING_ID - FIRST_VALUE_ID,
    )
    transformer = ColumnTransformer(
        [
            ("numeric", numeric, list(spec.columns)),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), one_hot),
            ("embedded", vocabulary, vocabulary_columns(spec)),
        ],
        sparse_threshold=0,
    )
    return transformer.fit(feature_frame(train, spec))


class FeatureEncoder(InputEncoder):
    """Numeric and categorical columns through the transformer :func:`fit_features` fitted:
    per row the dense part (numbers, missing indicators, one-hot categories), then one id
    per embedded column (exact in float32), which the network's :class:`EmbeddedInput` looks up."""

    def __init__(self, spec: InputConfig, path: Path) -> None:
        import skops.io

        self.spec = spec
        self.columns = spec_columns(spec, 0)
        self.transformer = skops.io.load(path, trusted=FEATURE_TYPES_TRUSTED)
        self.vocabulary = vocabulary_columns(spec)
        #: what the backbone reads per row before the embeddings: numbers, indicators, one-hot categories
        self.dense_width = len(self.transformer.get_feature_names_out()) - len(self.vocabulary)
        #: the ids of each embedded column (vocabulary ones, then hashed ones) and their widths
        self.embeddings = [
            (ids, embedding_width(spec, column, ids))
            for column, ids in [*zip(self.vocabulary, self._vocabulary_sizes()), *self._hash_sizes()]
        ]
        self.width = self.dense_width + len(self.embeddings)

    def _vocabulary_sizes(self) -> list[int]:
        if not self.vocabulary:
            return []
        categories = self.transformer.named_transformers_["embedded"].categories_
        return [FIRST_VALUE_ID + sum(1 for value in values if not is_missing(value)) for values in categories]

    def _hash_sizes(self) -> list[tuple[str, int]]:
        return [(column, buckets + 1) for column, buckets in self.spec.hash_buckets.items()]

    def encode(self, frame: pd.DataFrame) -> Tensor:
        values = np.asarray(self.transformer.transform(feature_frame(frame, self.spec)), dtype=np.float32)
        values[:, self.dense_width :] += FIRST_VALUE_ID
        for index, column in enumerate(self.vocabulary):  # scikit-learn calls a missing value training lacked unseen
            values[frame[column].isna().to_numpy(), self.dense_width + index] = MISSING_ID
        hashed = [hashed_ids(frame[column], buckets) for column, buckets in self.spec.hash_buckets.items()]
        if hashed:
            values = np.concatenate([values, np.stack(hashed, axis=1).astype(np.float32)], axis=1)
        return torch.from_numpy(values)


class TextWithFeaturesEncoder(InputEncoder):
    """A text column and the feature columns beside it, as one float tensor: the token ids
    (exact in float32 below 2^24), then the encoded features. ``WithFeatures`` splits them
    again in the model: the training loop, batching and serving see one input tensor."""

    def __init__(self, text: TextEncoder, features: FeatureEncoder) -> None:
        self.text, self.features = text, features
        self.columns = [*text.columns, *features.columns]
        self.width = features.width

    def encode(self, frame: pd.DataFrame) -> Tensor:
        return torch.cat([self.text.encode(frame).float(), self.features.encode(frame)], dim=1)


class DatasetsEncoder(InputEncoder):
    """Rows of several datasets in one frame: each row encoded by its ``dataset``'s encoder."""

    def __init__(self, encoders: dict[str, InputEncoder]) -> None:
        self.encoders = encoders
        self.columns = list(dict.fromkeys([c for e in encoders.values() for c in e.columns] + [DATASET_COLUMN]))

    def rows_of(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if DATASET_COLUMN not in frame.columns:
            raise ValueError(
                f"rows from several datasets need a {DATASET_COLUMN!r} column: one of {', '.join(self.encoders)}"
            )
        unknown = sorted(set(frame[DATASET_COLUMN].astype(str)) - set(self.encoders))
        if unknown:
            raise ValueError(f"unknown {DATASET_COLUMN} value(s) {unknown}; valid: {', '.join(self.encoders)}")
        return {name: np.flatnonzero(frame[DATASET_COLUMN].to_numpy() == name) for name in self.encoders}

    def encode(self, frame: pd.DataFrame) -> Tensor:
        parts = {name: rows for name, rows in self.rows_of(frame).items() if len(rows)}
        encoded = {name: self.encoders[name].encode(frame.iloc[rows]) for name, rows in parts.items()}
        first = next(iter(encoded.values()))
        inputs = first.new_zeros((len(frame), *first.shape[1:]))
        for name, rows in parts.items():
            inputs[torch.from_numpy(rows)] = encoded[name]
        return inputs

    def per_dataset(
        self, frame: pd.DataFrame, dataset: str, build: Callable[[InputEncoder, pd.DataFrame], Tensor]
    ) -> Tensor:
        """``build`` on the rows of ``dataset``; ``IGNORE`` on the rows of the others."""
        rows = self.rows_of(frame)[dataset]
        part = build(self.encoders[dataset], frame.iloc[rows])
        out = torch.full((len(frame), *part.shape[1:]), IGNORE, dtype=part.dtype)
        out[torch.from_numpy(rows)] = part
        return out


def resolve_encoder_path(path: str) -> Path:
    """A Hugging Face encoder directory; ``package:<name>/<dir>`` is looked up inside an
    installed package (found, not imported: loading the package is not needed)."""
    if not path.startswith("package:"):
        return Path(path)
    package, _, inner = path.removeprefix("package:").partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model.hf_encoder.path {path!r}: package {package!r} is not installed")
    return Path(spec.submodule_search_locations[0]) / inner


def encoder_dir(data_dir: Path) -> Path:
    """Where ``prepare`` keeps what the input encoder fitted: next to the data, versioned with it."""
    return data_dir / ENCODER_DIR


def _training_texts(params: Params, train: pd.DataFrame) -> list[str]:
    """Every text the tokenizer learns from: text columns, both texts of pairs, and the
    words of token lists, from the training rows of each dataset."""
    texts: list[str] = []
    for dataset, spec in params.data.inputs().items():
        rows = train if dataset is None else train[train[DATASET_COLUMN] == dataset]
        for column in spec.columns if spec.kind in TEXT_INPUTS else []:
            values = rows[column].dropna()
            texts += [" ".join(_words(v)) for v in values] if spec.kind == "tokens" else values.astype(str).tolist()
    return texts


def fit_encoder(params: Params, train: pd.DataFrame, directory: Path) -> None:
    """Fits what the inputs need on the training split and writes it to ``directory``.

    A pretrained encoder brings its own tokenizer: it and the encoder's config are copied,
    so serving can rebuild the network without the original directory; so is a pretrained
    vision backbone's config.
    """
    kinds = {spec.kind for spec in params.data.inputs().values()}
    directory.mkdir(parents=True, exist_ok=True)
    if kinds & set(TEXT_INPUTS) and params.model.backbone == "hf_encoder":
        source = resolve_encoder_path(params.model.hf_encoder.path)
        for name in (TOKENIZER_FILE, HF_CONFIG_FILE):
            if not (source / name).exists():
                raise FileNotFoundError(f"{source}: no {name}; model.hf_encoder.path must hold a Hugging Face encoder")
            shutil.copyfile(source / name, directory / name)
    elif kinds & set(TEXT_INPUTS):
        from tokenizers import (
            Tokenizer,
            models,
            normalizers,
            pre_tokenizers,
            processors,
            trainers,
        )

        pairs = "text_pair" in kinds
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=params.model.text_transformer.vocab_size,
            special_tokens=[PAD, UNK, CLS, SEP] if pairs else [PAD, UNK],
            show_progress=False,
        )
        # Not bit-reproducible: the trainer numbers continuing sub-words in hash-map order and
        # breaks count ties by those numbers (huggingface/tokenizers#1794, fix pending in #2066)
        tokenizer.train_from_iterator(_training_texts(params, train), trainer=trainer)
        if pairs:  # single texts stay as they are; pairs get BERT's layout
            specials = [(CLS, tokenizer.token_to_id(CLS)), (SEP, tokenizer.token_to_id(SEP))]
            tokenizer.post_processor = processors.TemplateProcessing(
                single="$A", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1", special_tokens=specials
            )
        tokenizer.save(str(directory / TOKENIZER_FILE))
    if params.model.backbone == "hf_backbone" and params.model.hf_backbone.path is not None:
        source = Path(params.model.hf_backbone.path) / HF_CONFIG_FILE
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing; model.hf_backbone.path must hold a saved vision backbone")
        (directory / HF_BACKBONE_DIR).mkdir(exist_ok=True)
        shutil.copyfile(source, directory / HF_BACKBONE_DIR / HF_CONFIG_FILE)
    features = [part for spec in params.data.inputs().values() if (part := spec.feature_part())]
    if features:  # datasets with pixel or feature inputs all share one (config checks it)
        import skops.io

        skops.io.dump(fit_features(features[0], train), directory / FEATURES_FILE)


@dataclass(frozen=True)
class FittedFeatures:
    """What a network needs to know of the fitted feature columns before it is built."""

    #: values per encoded row: the dense part (numbers, indicators, one-hot), then one id per embedded column
    width: int
    #: (ids, width) of each embedded column's table, in the order their ids follow the dense part
    embeddings: tuple[tuple[int, int], ...] = ()


def fitted_features(params: Params, directory: Path) -> FittedFeatures | None:
    """The fitted feature columns of a features input or of the columns beside a text one,
    known once :func:`fit_encoder` has written ``directory``; None for an input without
    feature columns."""
    part = next(iter(params.data.inputs().values())).feature_part()
    if part is None:
        return None
    encoder = FeatureEncoder(part, directory / FEATURES_FILE)
    return FittedFeatures(int(encoder.width), tuple(encoder.embeddings))


def _encoder_for(spec: InputConfig, params: Params, directory: Path) -> InputEncoder:
    if spec.kind in TEXT_INPUTS:
        model = params.model
        max_length = (
            model.hf_encoder.max_length if model.backbone == "hf_encoder" else model.text_transformer.max_length
        )
        text = TextEncoder(spec, directory / TOKENIZER_FILE, max_length)
        part = spec.feature_part()
        return text if part is None else TextWithFeaturesEncoder(text, FeatureEncoder(part, directory / FEATURES_FILE))
    if spec.kind == "features":
        return FeatureEncoder(spec, directory / FEATURES_FILE)
    if spec.kind == "image":
        return ImageEncoder(spec, params.data.image_size)
    return PixelEncoder(params.data.canvas_size)


def load_encoder(params: Params, directory: Path) -> InputEncoder:
    """The encoder of the inputs, with what :func:`fit_encoder` wrote to ``directory``."""
    if params.data.datasets:
        return DatasetsEncoder(
            {name: _encoder_for(d.input, params, directory) for name, d in params.data.datasets.items()}
        )
    return _encoder_for(params.data.input, params, directory)
