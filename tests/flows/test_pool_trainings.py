"""How the pipeline flow hands trainings to the GPU pool: all at once, when the stage asks
for the first result (the stage's timing then covers them), each result to whoever asks."""

from __future__ import annotations

import threading
import time

from flows.pipeline import _started_together


def test_every_training_starts_when_the_stage_asks_for_the_first_result():
    started: list[tuple[str, int]] = []
    running = threading.Barrier(3, timeout=5)  # passes only if all three run at once

    def train(task: str, seed: int) -> str:
        started.append((task, seed))
        running.wait()
        time.sleep(0.05)
        return f"{task} seed {seed}"

    keys = [("left", 0), ("right", 0), ("left", 1)]
    result = _started_together(train, keys)
    assert started == []  # nothing runs before the stage asks
    assert result("right", 0) == "right seed 0"
    assert sorted(started) == sorted(keys)
    assert [result(*key) for key in keys] == ["left seed 0", "right seed 0", "left seed 1"]
    assert len(started) == 3  # asked again, nothing trains twice
