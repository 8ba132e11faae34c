"""Task sampling over separate datasets: the probabilities of each strategy, computed by hand,
and the frequencies a sampler realises."""

from __future__ import annotations

import pytest
import torch

from components.training.sampling import MixtureBatchSampler, sampling_probabilities

SIZES = [100, 400, 1600]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("uniform", [1 / 3, 1 / 3, 1 / 3]),
        ("proportional", [100 / 2100, 400 / 2100, 1600 / 2100]),
        # n^(1/2) = 10, 20, 40
        ("temperature", [10 / 70, 20 / 70, 40 / 70]),
        # min(n, 500) = 100, 400, 500
        ("capped", [100 / 1000, 400 / 1000, 500 / 1000]),
    ],
)
def test_probabilities_match_hand_computed_values(strategy, expected):
    probabilities = sampling_probabilities(SIZES, strategy, temperature=2.0, cap=500)
    assert probabilities.tolist() == pytest.approx(expected)


def test_temperature_one_is_proportional_and_a_high_temperature_nears_uniform():
    assert sampling_probabilities(SIZES, "temperature", temperature=1.0).tolist() == pytest.approx(
        sampling_probabilities(SIZES, "proportional").tolist()
    )
    assert sampling_probabilities(SIZES, "temperature", temperature=1000.0).tolist() == pytest.approx(
        [1 / 3] * 3, abs=1e-3
    )


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown sampling 'annealed'; valid: uniform, proportional, temperature, capped"
    ):
        sampling_probabilities(SIZES, "annealed")


def test_temperature_sampling_frequencies_over_10000_draws_within_2_percent():
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate([100, 400, 9500])])  # 10,000 rows: one epoch
    probabilities = sampling_probabilities([100, 400, 9500], "temperature", temperature=2.0)
    sampler = MixtureBatchSampler(groups, probabilities, batch_size=64, generator=torch.Generator().manual_seed(0))
    drawn = torch.cat([torch.tensor(batch) for batch in sampler])
    assert len(drawn) == 10_000 and len(sampler) == 157  # an epoch is Σ n_i rows
    frequencies = torch.bincount(groups[drawn], minlength=3) / len(drawn)
    assert (frequencies - probabilities.float()).abs().max() < 0.02
    # the small dataset repeats (≈ 10.4 × 100 rows) in full shuffled passes, not at random
    small = drawn[groups[drawn] == 0]
    assert torch.bincount(small, minlength=100).max() - torch.bincount(small, minlength=100).min() <= 1


def test_each_process_takes_its_slice_of_every_global_batch():
    from components.training.distributed import Context

    groups = torch.tensor([0] * 30 + [1] * 10)
    probabilities = sampling_probabilities([30, 10], "uniform")
    batches = [
        list(MixtureBatchSampler(groups, probabilities, 8, torch.Generator().manual_seed(1), Context(r, 2, r)))
        for r in (0, 1)
    ]
    whole = list(MixtureBatchSampler(groups, probabilities, 8, torch.Generator().manual_seed(1)))
    assert [sorted(a + b) for a, b in zip(*batches)] == [sorted(batch) for batch in whole]
