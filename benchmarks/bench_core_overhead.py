"""Per-call overhead of executing a trivial model through the runtime.

Measures, in one run, the median latency of calling a trivial model directly, through
the runtime synchronously (``model(x)``), and asynchronously (``submit(x).result()``),
and prints the added microseconds and ratios. Target: at most 50 us of added median
latency per call. The best hand-written alternative is a bare
``concurrent.futures.ThreadPoolExecutor`` with one worker: the same thread handoff,
without placement, limits, timeouts or counters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

TARGET_US = 50.0


def trivial(x):
    return x


def median_us(call, calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean latency of ``calls`` calls, in microseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (for tests)")
    args = parser.parse_args(argv)
    calls, rounds = (200, 5) if args.quick else (2000, 15)
    os.environ.setdefault("NCRT_STATE_DIR", tempfile.mkdtemp(prefix="ncrt-bench-"))
    os.environ.setdefault("NEURON_RT_VISIBLE_CORES", "0")
    import ncrt

    model = ncrt.load(trivial)
    pool = ThreadPoolExecutor(max_workers=1)
    model(0), pool.submit(trivial, 0).result()  # warm the worker threads
    direct = median_us(lambda: trivial(1), calls, rounds)
    pooled = median_us(lambda: pool.submit(trivial, 1).result(), calls, rounds)
    sync = median_us(lambda: model(1), calls, rounds)
    asynchronous = median_us(lambda: model.submit((1,)).result(), calls, rounds)
    pool.shutdown()
    print(f"{'path':<34}{'median us/call':>16}{'added us':>10}")
    for label, value in [("direct call", direct), ("ThreadPoolExecutor(1) handoff", pooled),
                         ("ncrt sync  model(x)", sync), ("ncrt async submit(x).result()", asynchronous)]:
        print(f"{label:<34}{value:>16.2f}{value - direct:>10.2f}")
    for label, value in (("sync", sync), ("async", asynchronous)):
        verdict = "OK" if value - direct <= TARGET_US else "OVER TARGET"
        print(f"added median latency, {label}: {value - direct:.1f} us (target <= {TARGET_US:.0f} us): {verdict}")
    print(f"async vs the hand-written alternative (thread-pool handoff): ncrt adds "
          f"{asynchronous - pooled:.1f} us; throughput ratio {pooled / asynchronous:.2f} (aim >= 0.9)")
    print(f"sync vs thread-pool handoff: throughput ratio {pooled / sync:.2f} "
          "(sync calls run inline on an idle core, as nrt_execute does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
