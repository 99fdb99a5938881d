"""Generate cocotune/_proto/caffe_pb2.py from proto/caffe.proto.

Runs the protoc bundled with grpcio-tools (``grpc_tools.protoc``), so no
system protoc is needed. The output only depends on the schema and on the
grpcio-tools version, so running this twice gives byte-identical files.

Usage:
    python scripts/gen_caffe_pb2.py            # (re)write the module
    python scripts/gen_caffe_pb2.py --check    # exit 1 if the module is stale
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = REPO_ROOT / "proto"
PROTO_NAME = "caffe.proto"
MODULE_PATH = REPO_ROOT / "cocotune" / "_proto" / "caffe_pb2.py"

REGENERATE_NOTE = (
    b"# Regenerate with: python scripts/gen_caffe_pb2.py (source: proto/caffe.proto)\n"
)


def generate_module(out_dir: Path, proto_dir: Path = PROTO_DIR) -> Path:
    """Compile ``caffe.proto`` into ``out_dir/caffe_pb2.py`` and return its path.

    Parameters:
        out_dir: existing directory that receives ``caffe_pb2.py``.
        proto_dir: directory holding ``caffe.proto`` (the include root).

    Raises:
        RuntimeError: protoc reported an error (its message is on stderr).
    """
    out_dir = Path(out_dir)
    # protoc runs in its own process: grpc_tools' in-process compiler shares protobuf's C++
    # runtime with whatever the caller has loaded (TensorFlow, in the test suite) and can crash.
    # The include root and file name are passed relatively to protoc, so no absolute path of
    # this machine ends up in the generated module.
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"--python_out={out_dir}",
        PROTO_NAME,
    ]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"protoc failed with status {proc.returncode} on {proto_dir / PROTO_NAME}:\n"
            + proc.stderr
        )
    module = out_dir / "caffe_pb2.py"
    module.write_bytes(_postprocess(module.read_bytes()))
    return module


def generated_bytes(proto_dir: Path = PROTO_DIR) -> bytes:
    """Return the bytes a fresh generation of ``caffe_pb2.py`` would have."""
    with tempfile.TemporaryDirectory(prefix="cocotune_pb2_") as tmp:
        return generate_module(Path(tmp), proto_dir).read_bytes()


def _postprocess(data: bytes) -> bytes:
    """Add a one-line note after protoc's "DO NOT EDIT" banner line."""
    data = data.replace(b"\r\n", b"\n")
    if REGENERATE_NOTE in data:
        return data
    lines = data.splitlines(keepends=True)
    index = next((i for i, line in enumerate(lines) if b"DO NOT EDIT" in line), 0)
    lines.insert(index + 1, REGENERATE_NOTE)
    return b"".join(lines)


def _diff_summary(old: bytes, new: bytes, limit: int = 40) -> str:
    old_lines = old.decode("utf-8", "replace").splitlines()
    new_lines = new.decode("utf-8", "replace").splitlines()
    diff = list(
        difflib.unified_diff(
            old_lines,
            new_lines,
            fromfile="committed caffe_pb2.py",
            tofile="fresh caffe_pb2.py",
            lineterm="",
            n=1,
        )
    )
    changed = sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    shown = diff[:limit]
    if len(diff) > limit:
        shown.append(f"... ({len(diff) - limit} more diff lines)")
    return f"{changed} changed lines\n" + "\n".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the committed module differs from a fresh generation",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=MODULE_PATH,
        help=f"module to write or check (default: {MODULE_PATH.relative_to(REPO_ROOT)})",
    )
    options = parser.parse_args(argv)

    fresh = generated_bytes()
    target: Path = options.output
    if options.check:
        if not target.exists():
            print(f"{target}: missing; run scripts/gen_caffe_pb2.py", file=sys.stderr)
            return 1
        committed = target.read_bytes()
        if committed != fresh:
            print(f"{target}: out of date with {PROTO_DIR / PROTO_NAME}", file=sys.stderr)
            print(_diff_summary(committed, fresh), file=sys.stderr)
            return 1
        print(f"{target}: up to date")
        return 0

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.read_bytes() == fresh:
        print(f"{target}: unchanged")
    else:
        target.write_bytes(fresh)
        print(f"{target}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
