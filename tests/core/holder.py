"""A process that reserves NeuronCores and sleeps; test_reservation.py runs it.

Prints ``READY <cores>`` (comma-separated global indices) once it holds its cores, or
``FAIL <message>`` when the reservation is refused, then sleeps until killed. With
``--fork sleep`` it first forks a child that prints ``CHILD <pid> <cores> <forked>`` and
sleeps; with ``--fork exit`` the child prints the same line and exits, and the parent
waits for it before printing READY.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ncrt.errors import NcrtError
from ncrt.reservation import Reservation
from ncrt.topology import build_topology


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--instance", default="inf1.6xlarge")
    parser.add_argument("--visible", default=None, help="'3' or '3-5'")
    parser.add_argument("--num", type=int, default=0)
    parser.add_argument("--fork", choices=["sleep", "exit"], default=None)
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch time to start")
    return parser.parse_args()


def visible_cores(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    first, _, last = text.partition("-")
    return tuple(range(int(first), int(last or first) + 1))


def fork_child(reservation: Reservation, mode: str) -> None:
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        cores = ",".join(map(str, reservation.cores)) or "-"
        print(f"CHILD {os.getpid()} {cores} {reservation.forked}", flush=True)
        os.write(writable, b"x")  # the parent prints READY only after this line
        if mode == "sleep":
            time.sleep(120)
        os._exit(0)
    os.read(readable, 1)
    if mode == "exit":
        os.waitpid(pid, 0)


def main() -> None:
    args = parse_args()
    topology = build_topology(args.instance)
    time.sleep(max(0.0, args.start_at - time.time()))
    try:
        reservation = Reservation.acquire(
            topology, visible=visible_cores(args.visible), num=args.num, state_dir=args.state_dir
        )
    except NcrtError as error:
        print("FAIL " + str(error).replace("\n", " "), flush=True)
    else:
        if args.fork:
            fork_child(reservation, args.fork)
        print("READY " + ",".join(map(str, reservation.cores)), flush=True)
    sys.stdout.flush()
    time.sleep(120)


if __name__ == "__main__":
    main()
