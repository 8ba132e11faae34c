"""A served model's backbone features, kept per input row so that separate calls for
different tasks on the same rows run the backbone once.

A client that asks for ``left`` on some rows and then for ``sum`` on the same rows pays for
the shared backbone twice without it; with it, the second call runs only the ``sum`` head.
Each row is keyed by a BLAKE2 hash of its *encoded* input (the tensor the network reads),
so equal inputs hit whatever their DataFrame index or column order. On a miss the features
of every task are computed and kept (for hard sharing they are one tensor; MMoE adds its
gates, cross-stitch runs every column anyway), so a later call for any task hits. Least
recently used rows are evicted beyond ``serving.feature_cache_mb``. In eval mode a row's
features do not depend on the other rows of its batch, so a hit answers as a miss would
(up to float rounding of a different batch size). Hand-written: ``functools.lru_cache``
keys on Python objects, bounds entries rather than bytes, and cannot serve part of a batch.

Example::

    >>> from torch import nn
    >>> from components.models.backbones import MLPBackbone
    >>> from components.config import MLPConfig
    >>> from components.models.sharing import HardSharingModel
    >>> network = HardSharingModel(MLPBackbone(MLPConfig(hidden=[4]), 3), {"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})
    >>> cache = FeatureCache(max_bytes=2**20)
    >>> rows = torch.randn(5, 3)
    >>> _ = cache.features(network.eval(), rows), cache.features(network, rows[:2])
    >>> cache.stats()
    {'hits': 2, 'misses': 5, 'rows': 5, 'bytes': 160, 'max_bytes': 1048576}
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from torch import Tensor

from components.models import MultiTaskNetwork


def row_key(row: Tensor) -> bytes:
    """A digest of one encoded row: its dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{row.dtype}{tuple(row.shape)}".encode())
    digest.update(row.contiguous().cpu().numpy().tobytes())
    return digest.digest()


def _nbytes(row: dict[str, Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in row.values())


class FeatureCache:
    """Per-row features of every task, least recently used evicted beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._rows: OrderedDict[bytes, dict[str, Tensor]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def features(self, network: MultiTaskNetwork, inputs: Tensor) -> dict[str, Tensor]:
        """Every task's features for ``inputs`` (rows first), from the cache where it has them."""
        keys = [row_key(row) for row in inputs]
        missing = [index for index, key in enumerate(keys) if key not in self._rows]
        fresh: dict[bytes, dict[str, Tensor]] = {}
        if missing:
            computed = network.task_features(inputs[missing], list(network.heads))
            for position, index in enumerate(missing):
                fresh[keys[index]] = {task: values[position].clone() for task, values in computed.items()}
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        rows = [fresh.get(key) or self._rows[key] for key in keys]
        for key in keys:  # the used rows become the most recent
            if key in self._rows:
                self._rows.move_to_end(key)
        for key, row in fresh.items():
            self._store(key, row)
        return {task: torch.stack([row[task] for row in rows]) for task in network.heads}

    def _store(self, key: bytes, row: dict[str, Tensor]) -> None:
        size = _nbytes(row)
        if key in self._rows or size > self.max_bytes:
            return
        self._rows[key] = row
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._rows.popitem(last=False)
            self._bytes -= _nbytes(evicted)

    def stats(self) -> dict[str, int]:
        """Rows served from the cache and computed, rows and bytes held, the byte limit."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "rows": len(self._rows),
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
        }
