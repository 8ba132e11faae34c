"""Known-answer regression tasks: the synthetic data of Ma et al. 2018, "Modeling Task
Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts" (KDD, §3.2).

Two orthonormal directions u₁, u₂ ∈ ℝᵈ and a correlation p set the tasks' weights::

    w₁ = c·u₁        w₂ = c·(p·u₁ + √(1 − p²)·u₂)

and each row x ~ N(0, I_d) gets the labels::

    y_t = w_tᵀx + Σᵢ₌₁ᵐ sin(αᵢ·w_tᵀx + βᵢ) + ε_t,      ε_t ~ N(0, 0.01)

so p = cos(w₁, w₂) is the tasks' relatedness: at p = 1 both are one function and sharing
cannot hurt a converged model; at p = 0 they share nothing. More than two tasks extend it
the obvious way: task t > 1 has its own direction u_t, so each is p-correlated with y₁ and
p²-correlated with the others. The paper leaves αᵢ, βᵢ as "given parameters"; here they are
drawn once from N(0, 1) by ``data.synthetic.seed``, with the u_t, so one seed is one
function. Rows come from that seed and a stream number (splits 0, 1, 2; a truth set any
other), which is what lets a study score a model on 100,000 fresh rows of the same tasks.

Example::

    >>> from components.config import SplitSizes, SyntheticConfig
    >>> config = SyntheticConfig(correlation=0.5, features=8, rows=SplitSizes(train=6, val=3, test=3))
    >>> weights, _, _ = task_function(config)
    >>> round(float(weights[0] @ weights[1]) / float(weights[0] @ weights[0]), 6)
    0.5
    >>> frames = build_synthetic(config)
    >>> {split: frame.shape for split, frame in frames.items()}
    {'train': (6, 11), 'val': (3, 11), 'test': (3, 11)}
    >>> list(frames["train"].columns[[0, 1, -2, -1]])
    ['id', 'x_000', 'y1', 'y2']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import SyntheticConfig
from components.data.splits import SPLITS

#: the standard deviation of ε: the paper's N(0, 0.01) is a variance
NOISE_STD = 0.1


def task_function(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weights w_t (tasks × features), and the sinusoids' α and β (m each)."""
    rng = np.random.default_rng([config.seed, 0])
    directions, _ = np.linalg.qr(rng.standard_normal((config.features, config.tasks)))  # orthonormal columns
    first, others = directions[:, 0], directions[:, 1:].T
    p = config.correlation
    weights = np.vstack([first, p * first + np.sqrt(1 - p**2) * others]) * config.scale
    return weights, rng.standard_normal(config.sinusoids), rng.standard_normal(config.sinusoids)


def task_names(config: SyntheticConfig) -> list[str]:
    """The label columns: y1, y2, …"""
    return [f"y{t + 1}" for t in range(config.tasks)]


def synthetic_rows(config: SyntheticConfig, rows: int, stream: int) -> pd.DataFrame:
    """``rows`` rows of the tasks drawn from stream ``stream`` (0, 1, 2: the splits)."""
    weights, alpha, beta = task_function(config)
    rng = np.random.default_rng([config.seed, 1, stream])
    inputs = rng.standard_normal((rows, config.features))
    linear = inputs @ weights.T  # (rows, tasks): w_tᵀx
    waves = np.sin(linear[:, :, None] * alpha + beta).sum(axis=2)
    labels = linear + waves + rng.normal(0.0, NOISE_STD, size=linear.shape)
    frame = pd.DataFrame(inputs.astype(np.float32), columns=config.columns())
    for index, name in enumerate(task_names(config)):
        frame[name] = labels[:, index].astype(np.float32)
    return frame


def build_synthetic(config: SyntheticConfig) -> dict[str, pd.DataFrame]:
    """The train/val/test splits, each from its own stream, with ids."""
    frames = {}
    for stream, split in enumerate(SPLITS):
        frame = synthetic_rows(config, getattr(config.rows, split), stream)
        frame.insert(0, "id", [f"{split}-{i:06d}" for i in range(len(frame))])
        frames[split] = frame
    return frames
