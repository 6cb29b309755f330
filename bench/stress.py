"""Run the end-to-end test files N times in a row and report how many runs passed.

    python bench/stress.py [--runs 20] [--busy] [FILES...]

Each run is a fresh ``pytest`` process over the end-to-end files (``tests/**/test_*e2e*.py`` and
the whole-process ``tests/test_run_*.py``), so a flaky test shows up as a failed run. With
``--busy`` another process spins on one core for the whole time (the 2-core CI machine with a
neighbour). Exit status 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def e2e_files() -> list[str]:
    tests = ROOT / "tests"
    files = sorted({*tests.rglob("test_*e2e*.py"), *tests.glob("test_run_*.py")})
    return [str(p.relative_to(ROOT)) for p in files]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    ap.add_argument("files", nargs="*", help="test files (default: the end-to-end ones)")
    args = ap.parse_args(argv)
    files = args.files or e2e_files()

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too: the finally below kills the busy process

    signal.signal(signal.SIGTERM, stop)
    busy = None
    if args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    passed, failures = 0, []
    try:
        for i in range(1, args.runs + 1):
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                cwd=ROOT, capture_output=True, text=True, check=False)
            ok = proc.returncode == 0
            passed += ok
            last = proc.stdout.strip().splitlines()[-1:] or [""]
            print(f"run {i:2d}/{args.runs}: {'pass' if ok else 'FAIL'} "
                  f"({time.monotonic() - t0:.1f}s) {last[0]}", flush=True)
            if not ok:
                failures.append([ln for ln in proc.stdout.splitlines()
                                 if ln.startswith(("FAILED", "ERROR"))])
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    print(f"{passed}/{args.runs} runs passed ({len(files)} files"
          f"{', one core kept busy' if busy else ''})")
    for lines in failures:
        for line in lines:
            print("  " + line)
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
