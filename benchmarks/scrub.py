"""How long ``scrub()`` takes on a large hostile inbound text (before/after the fix).

    python benchmarks/scrub.py                 # the current scrub(), 100 kB inputs
    python benchmarks/scrub.py --with-old      # also the previous email pattern (minutes)

The previous email pattern, ``[\\w.+-]+@...`` without a lookbehind, rescanned a run of
word characters with no "@" from every position in it: quadratic in the run's length.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from forewarn.notifier.privacy import scrub

OLD_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def inputs(size: int) -> dict[str, str]:
    return {
        "digits": "1" * size,
        "letters": "a" * size,
        "dotted": "a." * (size // 2),
        "domain without dot": "a@" + "b" * size,
        "many addresses": "a@b." * (size // 4),
        "realistic text": ("call me at +351912345678 or joana@example.com, thanks. " * size)[:size],
    }


def timed(function: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    function(text)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--with-old", action="store_true")
    args = parser.parse_args()
    print(
        f"{'input':<20} {'scrub() ms':>12}" + (f" {'old pattern s':>14}" if args.with_old else "")
    )
    for name, text in inputs(args.size).items():
        line = f"{name:<20} {timed(scrub, text) * 1000:>12.1f}"
        if args.with_old:
            line += f" {timed(lambda t: OLD_EMAIL.sub('', t), text):>14.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
