"""The machine's memory read bandwidth (a STREAM-like sum over 1 GiB), the roofline for decode."""

from __future__ import annotations

import numpy as np


def test_read_bandwidth(benchmark):
    data = np.ones(1 << 28, dtype=np.float32)  # 1 GiB
    benchmark.pedantic(data.sum, rounds=5, iterations=1, warmup_rounds=1)
    gb_per_s = data.nbytes / benchmark.stats.stats.median / 1e9
    benchmark.extra_info["read_gb_per_s_1_thread"] = gb_per_s
    print(f"\nread bandwidth, numpy sum, 1 thread: {gb_per_s:.1f} GB/s")
