"""Interleaved timing rounds (the end of the methods step): order, spread, paired ratios."""
from __future__ import annotations

import time

import pytest
import torch

from lsalsa.experiments.timing import interleaved, spread


def test_rounds_rotate_the_order_and_time_each_call():
    calls = []

    def encoder(name, seconds):
        return lambda Y: (calls.append(name), time.sleep(seconds), Y)[-1]

    encoders = {"a": encoder("a", 0.002), "b": encoder("b", 0.02), "c": encoder("c", 0.002)}
    times, load = interleaved(encoders, torch.zeros(2, 2), rounds=3)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # each round starts one later
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert min(times["b"]) >= 0.02 and max(times["a"]) < min(times["b"])
    assert load >= 0 or load != load  # a load per core, or NaN where the system has none


def test_spread_and_paired_ratio():
    out = spread([2.0, 4.0, 9.0], [1.0, 4.0, 3.0])
    assert (out["time_s"], out["time_min"], out["time_max"]) == (4.0, 2.0, 9.0)
    # per round 2, 1, 3: the ratio of medians (4 / 3) is not the paired ratio
    assert (out["time_ratio"], out["ratio_min"], out["ratio_max"]) == (2.0, 1.0, 3.0)
    assert "time_ratio" not in spread([1.0], None)
