"""`make demo`: the main job, end to end, on the bundled example.

Each step runs the real `cocotune` command a user would type, so the demo shows exactly what
the README promises.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "resnet_digits"
COCOTUNE = [sys.executable, "-m", "cocotune"]


def step(title: str, args: list[str]) -> None:
    shown = "cocotune " + " ".join(shlex.quote(str(a)) for a in args)
    print(f"\n=== {title}\n$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run([*COCOTUNE, *map(str, args)], cwd=REPO, check=True)
    print(f"({time.perf_counter() - start:.1f} s)", flush=True)


def main() -> int:
    net = EXAMPLE / "net.prototxt"
    step("1. Read the net exactly as Caffe would, with its modules and shapes", ["check", net])
    step(
        "2. An Inception-style example",
        ["check", REPO / "examples" / "inception_digits" / "net.prototxt"],
    )
    print("\nDemo finished.")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except subprocess.CalledProcessError as exc:
        print(f"demo step failed with exit code {exc.returncode}", file=sys.stderr)
        raise SystemExit(1)
