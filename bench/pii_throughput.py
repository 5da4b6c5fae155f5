"""PII scrubbing throughput per entity type, on ordinary and on hostile text.

    python -m bench.pii_throughput [--kib 256] [--rounds 5]

1. Throughput. For each entity type, two texts of ``--kib`` KiB: ordinary prose with that entity
   every few hundred bytes, and hostile text built to make its detector work hard (the inputs of
   ``tests/sidecar/conversation/test_pii_linear.py``). Printed: MB/s of ``Scrubber.scrub`` and,
   as the baseline measured in the same run on the same text, MB/s of one plain ``re`` scan for
   digits and ``@`` (the least a scrubber must do: look at every character once). The ratio
   says how many such scans one scrub costs; it must not grow with the text (see the test).
2. The event loop. A request's text is scrubbed on the sidecar's event loop. With ``--kib``
   KiB of the slowest hostile text, it measures the longest time the loop could not answer
   anything (a 5 ms ticker stands in for a health check), scrubbing inline and in a worker
   thread (``asyncio.to_thread``), which is what the sidecar does above
   ``scrubbing.OFFLOAD_CHARS``.

Timings are the best of ``--rounds``; a busy machine lowers MB/s, not the ratios much.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Callable

from parley_sidecar.conversation.pii import Scrubber

PROSE = (
    "The quarterly review went well overall. Revenue grew in every region and the new onboarding flow "
    "cut support tickets noticeably. Our auditors asked for the usual documents, which I shared last "
    "week; the release v2.3.1 shipped on 2026-11-20T10:00:00Z for $1,299.00 per seat. {pii} Next steps: "
    "finalise the hiring plan and schedule the customer interviews. "
)

ENTITIES: dict[str, tuple[str, list[str]]] = {
    # entity: (an instance for ordinary text, hostile repeated units)
    "EMAIL": ("Write to jane.doe@example.com today.", ["@", "a@b.", "zë@", "a-"]),
    "PHONE": ("Call me on +1 415 555 2671 or 020 7946 0958.", ["1 ", "+1 ", "(1", "5551234 ext ",
                                                                "1234567812345678 a 555 1234 b "]),
    "IP": ("Hosts 10.20.30.40 and 2001:db8::1 rebooted.", ["1:", ":", "1::", "g1:", "00:", "1.1.1.1."]),
    "CREDIT_CARD": ("Card 4111 1111 1111 1111 or 4111.1111.1111.1111.", ["4111 1111 ", "4111.1111.", "1"]),
    "SSN": ("SSN 078-05-1120 on file.", ["123-45-", "123-45-6789-"]),
    "ZIP_CODE": ("Ship to 94103-1234.", ["12345-", "12345 6789 "]),
    "STREET_ADDRESS": ("We moved to 500 Market Street, downtown.", ["1 st ", "1 in a b st ", "1 " + "a" * 300 + " "]),
    "PO_BOX": ("Parcels go to PO Box 4411.", ["P.O. Box 1 ", "ox "]),
    "ISBN": ("Read ISBN 978-0-306-40615-7 first.", ["978-", "9780306406157"]),
    "MAC_ADDRESS": ("NIC 00:1A:2B:3C:4D:5E is new.", ["00:", "00-", "00:11:22:33:44:55:"]),
    "IBAN": ("Pay to DE89 3704 0044 0532 0130 00.", ["DE89 ", "AA11AAAA1111111"]),
    "(protected, ignored)": ("Build 1.2.3 at 10:30, see https://example.com/a(b).",
                             ["1.2.3 ", "15.01.2024 10:30 ", "$1,111,111", "http://a.", "git@a:"]),
}
BASELINE = re.compile(r"[0-9@]")


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def best_seconds(fn: Callable[[str], object], text: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - started)
    return best


def scan_once(text: str) -> int:
    return sum(1 for _ in BASELINE.finditer(text))


def throughput(scrubber: Scrubber, size: int, rounds: int) -> tuple[str, float]:
    print(f"{'entity':22} {'text':24} {'scrub MB/s':>7} {'re scan MB/s':>10} {'ratio':>8}")
    slowest = ("", float("inf"))
    for entity, (instance, units) in ENTITIES.items():
        texts = [("ordinary", fill(PROSE.format(pii=instance), size))]
        texts += [(f"hostile {unit[:12]!r}", fill(unit, size)) for unit in units]
        for label, text in texts:
            mb = len(text.encode()) / 1e6
            scrub = best_seconds(scrubber.scrub, text, rounds)
            scan = best_seconds(scan_once, text, rounds)
            print(f"{entity:22} {label:24} {mb / scrub:7.2f} {mb / scan:10.1f} {scrub / scan:8.1f}x", flush=True)
            if label != "ordinary" and mb / scrub < slowest[1]:
                slowest = (text, mb / scrub)
    return slowest


async def _longest_stall(work: Callable[[], object], offload: bool) -> float:
    """The longest gap between ticks of a 5 ms ticker while ``work`` runs."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    if offload:
        await asyncio.to_thread(work)
    else:
        work()
    await asyncio.sleep(0.02)
    done.set()
    await ticking
    return max(gaps)


def event_loop(scrubber: Scrubber, text: str) -> None:
    took = best_seconds(scrubber.scrub, text, 1)
    kib = len(text.encode()) / 1024
    for offload in (False, True):
        stall = asyncio.run(_longest_stall(lambda: scrubber.scrub(text), offload))
        how = "in a worker thread" if offload else "on the event loop"
        print(f"{kib:.0f} KiB of {text[:12]!r}… (scrub {took * 1000:.0f} ms) {how:20}: "
              f"longest stall {stall * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scrubber = Scrubber()
    slowest, _ = throughput(scrubber, args.kib * 1024, args.rounds)
    print()
    event_loop(scrubber, fill(slowest, 4 * args.kib * 1024))


if __name__ == "__main__":
    main()
