"""The machine's memory read bandwidth, the roofline for decode: a streaming max over 1 GiB of
int32 (vectorised by numpy, no arithmetic to speak of), on 1 thread and split over 2 threads
(numpy releases the GIL inside the reduction)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import BANDWIDTH


@pytest.mark.parametrize("threads", [1, 2])
def test_read_bandwidth(benchmark, threads):
    data = np.ones(1 << 28, dtype=np.int32)  # 1 GiB
    parts = np.array_split(data, threads)
    with ThreadPoolExecutor(threads) as pool:
        def read_all():
            return list(pool.map(np.max, parts))

        benchmark.pedantic(read_all, rounds=7, iterations=1, warmup_rounds=1)
    gb_per_s = data.nbytes / benchmark.stats.stats.median / 1e9
    benchmark.extra_info["read_gb_per_s"] = gb_per_s
    BANDWIDTH[threads] = gb_per_s
    print(f"\nread bandwidth, {threads} thread(s): {gb_per_s:.1f} GB/s")
