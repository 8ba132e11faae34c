"""``registry`` and ``serving``: where a model is registered and what a served one accepts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import Strict


class RegistryConfig(Strict):
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = "multimnist-mtl"
    """Letters, digits, '.', '_' and '-': registry searches quote the name, so quotes are refused."""
    experiment: str = "multimnist-mtl"
    """The MLflow experiment the pipeline's runs are logged in."""
    register_experiments: bool = False
    """A DVC experiment (`dvc exp run`) registers a version only when this is true."""


class ServingConfig(Strict):
    """What a registered model accepts per request (read when it is registered)."""

    max_batch_rows: Annotated[int, Field(ge=1)] = 10000
    """A request with more rows is refused with HTTP 413 naming this limit; clients split it."""
    chunk_rows: Annotated[int, Field(ge=1)] = 1024
    """Rows per forward pass within a request: bounds the server's memory, not the batch size."""
    max_request_mb: Annotated[float, Field(gt=0, le=1024)] = 128.0
    """mtl serve: a request body larger than this is refused with HTTP 413 before it is parsed (10,000 rows of
    1,296 pixels as JSON floats are 65 MB)."""
    max_json_depth: Annotated[int, Field(ge=4, le=64)] = 10
    """mtl serve: JSON nested deeper than this is refused with HTTP 400 (a request is 4 or 5 levels deep: a
    dataframe_split of rows of cells, a cell of words)."""
    feature_cache_mb: Annotated[float, Field(ge=0)] = 64.0
    """Backbone features kept per input row, so separate calls for different tasks on the same rows run the
    backbone once (least recently used evicted beyond this size); 0: off."""
    image_paths: bool = False
    """An image model also reads image files whose paths a request names, inside the directory the server runs in
    (an absolute path or one leaving it with .. is refused). False: images come only as base64 files in
    image_base64, so a request can never make the server open a file of its choosing."""
