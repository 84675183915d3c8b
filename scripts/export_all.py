"""Every registered classifier through `zoo export` (ONNX and pt2): the largest logit difference from eager PyTorch,
the tolerance it was held to, the file size and the time, one row per model, as Markdown.

    python scripts/export_all.py [--filter 'resnet*'] [--formats onnx pt2 safetensors]

Each model has its initial weights and batch norm statistics of one batch of random images (tests/test_export.py's
checkpoint_of), at the smallest side it takes (at least 32), and is checked on 8 FakeData test images.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from test_export import checkpoint_of, small_side

    from zoo.inference.export import export_checkpoint
    from zoo.models.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="*")
    parser.add_argument("--formats", nargs="+", default=["onnx", "pt2"])
    args = parser.parse_args()
    print("| model | side | " + " | ".join(f"{f} max diff | {f} tolerance | {f} MB | {f} s" for f in args.formats)
          + " |")
    print("|---|---:|" + "---:|" * 4 * len(args.formats))
    for name in list_models(args.filter, task="classification"):  # the autoencoders' export is not written yet
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = checkpoint_of(name, Path(folder))
            cells = []
            for format in args.formats:
                start = time.perf_counter()
                report = export_checkpoint(checkpoint, format)
                seconds = time.perf_counter() - start
                cells += [f"{report.max_abs_diff:.1e}", f"{report.tolerance:.1e}", f"{report.bytes / 1e6:.1f}",
                          f"{seconds:.1f}"]
                report.path.unlink()
            print(f"| {name} | {small_side(name)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
