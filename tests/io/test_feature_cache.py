"""The serving feature cache on real networks: exact features, LRU order, the byte bound."""

import pytest
import torch

from components.io.feature_cache import FeatureCache, row_key
from components.models import build_model
from components.tasks import build_tasks


@pytest.mark.parametrize("sharing", ["hard", "mmoe", "cross_stitch"])
def test_cached_features_are_the_network_features_for_every_task(tiny_params, sharing):
    params = tiny_params.model_copy(update={"model": tiny_params.model.model_copy(update={"sharing": sharing})})
    network = build_model(params, build_tasks(params.tasks)).eval()
    rows = torch.rand(6, 1, 36, 36)
    cache = FeatureCache(max_bytes=2**24)
    with torch.no_grad():
        expected = network.task_features(rows, list(network.heads))
        first = cache.features(network, rows[:4])
        mixed = cache.features(network, rows[2:])  # two rows seen, two new
    for task in network.heads:
        assert torch.allclose(first[task], expected[task][:4], atol=1e-6)
        assert torch.allclose(mixed[task], expected[task][2:], atol=1e-6)
    assert cache.stats()["hits"] == 2 and cache.stats()["misses"] == 6 and cache.stats()["rows"] == 6


def test_least_recently_used_rows_go_first_and_the_bytes_stay_bounded(tiny_params):
    network = build_model(tiny_params, build_tasks(tiny_params.tasks)).eval()
    rows = torch.rand(5, 1, 36, 36)
    per_row = 3 * tiny_params.model.cnn.hidden * 4  # three tasks' pooled float32 features
    cache = FeatureCache(max_bytes=3 * per_row)
    with torch.no_grad():
        cache.features(network, rows[:3])
        cache.features(network, rows[:1])  # row 0 is now the most recent
        cache.features(network, rows[3:4])  # evicts row 1, the least recent
    assert cache.stats()["rows"] == 3 and cache.stats()["bytes"] == 3 * per_row
    held = set(cache._rows)
    assert row_key(rows[0]) in held and row_key(rows[1]) not in held and row_key(rows[3]) in held


def test_equal_inputs_share_a_key_and_different_ones_do_not():
    row = torch.rand(1, 36, 36)
    assert row_key(row) == row_key(row.clone())
    assert row_key(row) != row_key(row + 1e-6)
    assert row_key(torch.zeros(4)) != row_key(torch.zeros(2, 2))  # the shape is part of the key
