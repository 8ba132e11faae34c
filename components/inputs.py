"""What the backbone reads from a row (``data.input``), and how rows become tensors.

- ``pixels``: columns ``px_0000`` … (``data.canvas_size``²), 0–255 → float (N, 1, H, W)
  in [0, 1]; read by ``cnn`` and ``mlp``.
- ``text``: one text column → token ids (N, max_length), 0 = padding; read by
  ``text_transformer`` and ``hf_encoder``.
- ``features``: the listed numeric columns → float (N, F), standardised; read by ``mlp``.

Text is tokenised by a WordPiece tokenizer that HF ``tokenizers`` trains on the training
split only, so nothing about validation or test text leaks into the vocabulary; a
pretrained ``hf_encoder`` brings its own tokenizer instead. Feature standardisation also
uses training statistics. ``prepare`` writes these files to ``data/encoder/``, versioned
with the data and shipped inside every registered model.

Example::

    >>> encoder = load_encoder(params, encoder_dir(Path("data")))
    >>> encoder.encode(frame).shape
    torch.Size([128, 64])
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from components.config import Params

PIXEL_PREFIX = "px_"
ENCODER_DIR = "encoder"
TOKENIZER_FILE = "tokenizer.json"
FEATURES_FILE = "features.json"
HF_CONFIG_FILE = "config.json"
PAD, UNK = "[PAD]", "[UNK]"  # id 0 is padding: the text backbone masks it


def pixel_columns(canvas_size: int) -> list[str]:
    return [f"{PIXEL_PREFIX}{i:04d}" for i in range(canvas_size * canvas_size)]


def input_columns(params: Params) -> list[str]:
    spec = params.data.input
    return pixel_columns(params.data.canvas_size) if spec.kind == "pixels" else list(spec.columns)


def request_frame(params: Params, frame: pd.DataFrame) -> pd.DataFrame:
    """The input columns of ``frame`` as a served model receives them: numbers as doubles,
    since JSON clients may send ints or floats and both convert safely."""
    inputs = frame[input_columns(params)]
    return inputs if params.data.input.kind == "text" else inputs.astype("float64")


class InputEncoder(ABC):
    #: the DataFrame columns a model reads (and a served request must send)
    columns: list[str]

    @abstractmethod
    def encode(self, frame: pd.DataFrame) -> Tensor:
        """The rows of ``frame`` as the backbone's input tensor."""


class PixelEncoder(InputEncoder):
    def __init__(self, canvas_size: int) -> None:
        self.canvas_size = canvas_size
        self.columns = pixel_columns(canvas_size)

    def encode(self, frame: pd.DataFrame) -> Tensor:
        pixels = frame[self.columns].to_numpy(dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).reshape(-1, 1, self.canvas_size, self.canvas_size)


class TextEncoder(InputEncoder):
    def __init__(self, column: str, tokenizer_path: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.columns = [column]
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        if self.tokenizer.token_to_id(PAD) != 0:
            raise ValueError(f"{tokenizer_path}: the backbones take token id 0 as padding, but {PAD} is not 0")
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token=PAD, length=max_length)

    def encode(self, frame: pd.DataFrame) -> Tensor:
        texts = frame[self.columns[0]].fillna("").astype(str).tolist()
        return torch.tensor([encoding.ids for encoding in self.tokenizer.encode_batch(texts)], dtype=torch.long)


class FeatureEncoder(InputEncoder):
    def __init__(self, columns: list[str], stats_path: Path) -> None:
        self.columns = list(columns)
        stats = json.loads(stats_path.read_text())
        self.mean = np.array([stats[c]["mean"] for c in self.columns], dtype=np.float32)
        self.std = np.array([stats[c]["std"] for c in self.columns], dtype=np.float32)

    def encode(self, frame: pd.DataFrame) -> Tensor:
        values = frame[self.columns].to_numpy(dtype=np.float32)
        return torch.from_numpy((values - self.mean) / self.std)


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


def fit_encoder(params: Params, train: pd.DataFrame, directory: Path) -> None:
    """Fits what the input needs on the training split and writes it to ``directory``.

    A pretrained encoder brings its own tokenizer: it and the encoder's config are copied,
    so serving can rebuild the network without the original directory.
    """
    spec = params.data.input
    directory.mkdir(parents=True, exist_ok=True)
    if spec.kind == "text" and params.model.backbone == "hf_encoder":
        source = resolve_encoder_path(params.model.hf_encoder.path)
        for name in (TOKENIZER_FILE, HF_CONFIG_FILE):
            if not (source / name).exists():
                raise FileNotFoundError(f"{source}: no {name}; model.hf_encoder.path must hold a Hugging Face encoder")
            shutil.copyfile(source / name, directory / name)
    elif spec.kind == "text":
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=params.model.text_transformer.vocab_size, special_tokens=[PAD, UNK], show_progress=False
        )
        tokenizer.train_from_iterator(train[spec.columns[0]].fillna("").astype(str).tolist(), trainer=trainer)
        tokenizer.save(str(directory / TOKENIZER_FILE))
    elif spec.kind == "features":
        stats = {
            column: {"mean": float(train[column].mean()), "std": float(train[column].std(ddof=0) or 1.0)}
            for column in spec.columns
        }
        (directory / FEATURES_FILE).write_text(json.dumps(stats, indent=2, sort_keys=True))


def load_encoder(params: Params, directory: Path) -> InputEncoder:
    """The encoder of ``data.input``, with what :func:`fit_encoder` wrote to ``directory``."""
    spec = params.data.input
    if spec.kind == "text":
        model = params.model
        max_length = model.hf_encoder.max_length if model.backbone == "hf_encoder" else model.text_transformer.max_length
        return TextEncoder(spec.columns[0], directory / TOKENIZER_FILE, max_length)
    if spec.kind == "features":
        return FeatureEncoder(spec.columns, directory / FEATURES_FILE)
    return PixelEncoder(params.data.canvas_size)
