"""Image-bank build time and memory on a generated Flowers-sized folder of real JPEGs.

Writes ``--images`` photos of about 500x600 px (smooth colour fields with edges and noise, saved as
quality-90 JPEGs, so decoding costs what a photo costs) as an ``imagefolder`` tree, then builds the
training bank of the 112-px pretraining stage (stored at 112/sqrt(0.05) -> 512 px) and of the 224-px
fine-tuning stage (224/sqrt(0.08) -> 800 px), and the old 160-px bank for comparison; prints build
time, images/s, bytes and the peak resident memory, and the bytes the same stages need for Cars-
(8,144) and SIN-10k-sized (10,000) training sets.

    python scripts/bench_bank.py                      # 2,040 images in a temporary folder, 2 workers
    python scripts/bench_bank.py --images 500 --folder /tmp/photos --workers 4
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from idmm_tui.data.registry import load_split
from idmm_tui.engine.batches import build_bank, train_storage_size

SIZES = {"flowers (2,040)": 2040, "cars (8,144)": 8144, "sin10k (10,000)": 10000}


def make_photo(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    """A photo-like image: low-frequency colour field + a few edges + sensor noise."""
    coarse = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(3):
        a, b, c = rng.normal(size=3)
        field[(a * yy + b * xx + c * 200) > 0] *= rng.uniform(0.6, 1.2)
    field += rng.normal(0, 6, field.shape)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


def write_folder(root: Path, n: int, seed: int = 0, start: int = 0) -> None:
    """``n`` photos ``train/c<k>/<start + i>.jpg`` in 10 classes (and 10 test photos when ``start`` is 0)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 10 if start == 0 else 0)):
        for i in range(start, start + count):
            cls = root / split / f"c{i % 10}"
            cls.mkdir(parents=True, exist_ok=True)
            h, w = int(rng.integers(480, 520)), int(rng.integers(500, 700))
            make_photo(rng, h, w).save(cls / f"{i:05d}.jpg", quality=90)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2040)
    parser.add_argument("--folder", type=Path, default=None, help="reuse / keep the generated folder here")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        if not (root / "train").is_dir():
            start = time.perf_counter()
            write_folder(root, args.images)
            print(f"wrote {args.images} JPEGs (~500x600 px) to {root} in {time.perf_counter() - start:.1f} s")
        split = load_split("imagefolder", root, "train")
        files = sum(p.stat().st_size for p in (root / "train").rglob("*.jpg"))
        print(f"{len(split)} training images, {files / 2**20:.0f} MiB of JPEG")
        stages = [
            ("old 112-px bank (160 px)", 160),
            ("pretrain 112 px", train_storage_size(112, 0.05)),
            ("fine-tune 224 px", train_storage_size(224, 0.08)),
        ]
        for label, side in stages:
            start = time.perf_counter()
            bank = build_bank(split, side, cache="yes", num_workers=args.workers)
            seconds = time.perf_counter() - start
            print(
                f"{label:26s} side {bank.images.shape[-1]:4d}: {seconds:6.1f} s ({len(bank) / seconds:6.1f} img/s), "
                f"{bank.nbytes / 2**30:5.2f} GiB, peak RSS {peak_rss_gib():5.2f} GiB"
            )
            del bank
        print("bytes of a cached training bank (uint8, 3 x S x S per image):")
        for name, n in SIZES.items():
            parts = [f"{side} px: {n * 3 * side * side / 2**30:5.2f} GiB" for _, side in stages[1:]]
            print(f"  {name:18s} " + "   ".join(parts))


if __name__ == "__main__":
    main()
