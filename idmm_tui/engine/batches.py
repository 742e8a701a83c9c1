"""From a dataset split to batches of uint8 images that the batched augmentations consume.

An :class:`ImageBank` holds a split ready for training: all images decoded once into one uint8
tensor (small datasets — the usual case for this tool; kept in GPU memory when it fits there, else in
pinned host memory), or a streaming view that decodes them in DataLoader workers each epoch (past a
memory budget). Either way a batch is ``(images uint8 [B, C, S, S], sizes [B, 2] original (h, w),
labels [B], instance ids [B])``.

**Storage size.** Images of any mode are converted to RGB and resized to an ``S × S`` square (each
axis on its own); their original size travels with them and every crop box is drawn in the original
frame, so crops keep the original aspect ratios. ``S`` is chosen per stage so that the crops are cut
from enough pixels (the release cuts them from the original photos): for training,
``S ≥ resolution / sqrt(smallest crop scale)`` — the side of the smallest random-resized crop
(0.05 of the area at 112 px: 512; 0.08 at 224 px: 800) is then at least the output resolution, so
crops are scaled down, not up; for test-time views (resize + centre crop) ``resolution / crop_pct ×
1.25`` (160 for 112 px, 320 for 224 px). ``S`` is capped at the largest side of the split's images (read
from the file headers where the dataset offers ``image_size``): small images are not stored larger
than they are.

Every image's instance id is its index in the bank: what IDMM's N-way head classifies.

**Images that cannot be decoded** (an empty file, text named ``.png``, a truncated JPEG, a
decompression bomb…) never raise inside a DataLoader worker: the worker hands back the reason, and
the main process reports every bad file of the split at once, by name (:class:`BadImagesError`,
exit 3) — or, with ``data.skip_bad_images = true``, leaves them out of the bank and says which.
:func:`preflight_images` checks the headers of a split's files before a run is created.
High-bit-depth images (16-bit, 32-bit integer, float) are scaled to 8 bits, not clipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from idmm_tui.data.base import image_path_of
from idmm_tui.data.registry import LabeledImages
from idmm_tui.errors import DataError
from idmm_tui.fsutil import open_regular

CACHE_FRACTION_OF_RAM = 0.3
CACHE_MAX_BYTES = 8 << 30
GPU_FRACTION_OF_FREE = 0.3  # at most this share of the free GPU memory holds a bank
HEADER_SAMPLE = 2000  # image headers read to find a split's largest side (all of them up to 10x this)
PREFLIGHT_MAX = 50_000  # splits up to this many files get every header checked before a run is created
SHOWN_BAD = 12  # bad files named in one error line


@dataclass(frozen=True)
class BadImage:
    """An image of a split that cannot be decoded: its position, its file (or ``image #i``) and why."""

    index: int
    name: str
    reason: str


class BadImagesError(DataError):
    """Images of a split cannot be decoded (exit 3); ``bad`` lists them all."""

    def __init__(self, message: str, bad: list[BadImage]):
        super().__init__(message)
        self.bad = bad


def image_name(split: LabeledImages, index: int) -> str:
    """The file behind ``split[index]``, or ``image #index`` when the dataset does not say."""
    path = image_path_of(split, index)
    return str(path) if path is not None else f"image #{index}"


def describe_bad_images(bad: list[BadImage]) -> str:
    """``N image(s) cannot be decoded: FILE (reason), …``: every one up to :data:`SHOWN_BAD`, then a count."""
    shown = "; ".join(f"{b.name} ({b.reason})" for b in bad[:SHOWN_BAD])
    more = f"; and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else ""
    return f"{len(bad)} image{'s' if len(bad) != 1 else ''} cannot be decoded: {shown}{more}"


def bad_images_error(bad: list[BadImage], split: str = "") -> BadImagesError:
    where = f"{split} split: " if split else ""
    return BadImagesError(
        f"{where}{describe_bad_images(bad)}. Fix or remove them, or set data.skip_bad_images = true to train "
        "without them",
        bad,
    )


def _reason(exc: BaseException) -> str:
    from PIL import Image as _Image

    if isinstance(exc, _Image.DecompressionBombError):
        return f"decompression bomb: {exc}"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return exc.strerror  # the file is known: no need to repeat its path
    text = str(exc).splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_header(path: str | os.PathLike) -> str | None:
    """Why the image file at ``path`` cannot be used, from its header and structure (no full decode), or None."""
    try:
        with open_regular(Path(path)) as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return "empty file"
            img = Image.open(handle)
            if img.width <= 0 or img.height <= 0:
                return f"no pixels ({img.width}x{img.height})"
            img.verify()  # structure and checksums where the format has them (PNG); not a full decode
    except Exception as exc:  # any failure of the image's own parser is the image's fault
        return _reason(exc)
    return None


def preflight_images(split: LabeledImages, what: str = "") -> list[BadImage]:
    """Every file of ``split`` whose header is unusable (all at once); [] for in-memory data or past
    :data:`PREFLIGHT_MAX` files (decoding in :func:`build_bank` still names any bad file)."""
    n = len(split)
    if getattr(split, "tensors", None) is not None or n > PREFLIGHT_MAX:
        return []
    bad = []
    for index in range(n):
        path = image_path_of(split, index)
        if path is None:
            return []  # not a dataset of files
        reason = check_header(path)
        if reason:
            bad.append(BadImage(index, str(path), reason))
    return bad


def _round16(x: float) -> int:
    return int(math.ceil(x / 16) * 16)


def train_storage_size(resolution: int, min_crop_scale: float) -> int:
    """Square side at which a stage's training images are kept: its smallest crop is not upsampled."""
    return _round16(resolution / math.sqrt(min_crop_scale))


def eval_storage_size(resolution: int, crop_pct: float = 0.875) -> int:
    """Square side for test-time views: ``resolution / crop_pct`` (256 for 224) times 1.25, rounded up to 16."""
    return _round16(resolution / crop_pct * 1.25)


def largest_side(split: LabeledImages) -> int | None:
    """The largest image side of the split, from file headers (a sample for very large splits).

    None when the dataset cannot tell without decoding (no ``image_size``) or no header could be read.
    """
    size = getattr(split, "image_size", None)
    n = len(split)
    if size is None or n == 0:
        return None
    step = 1 if n <= 10 * HEADER_SAMPLE else n / HEADER_SAMPLE
    sides = [max(hw) for hw in (size(int(k * step)) for k in range(min(n, HEADER_SAMPLE if step > 1 else n))) if hw]
    return max(sides) if sides else None


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """A 16-bit / 32-bit integer / float image as 8-bit grey, scaled by its type's range (not clipped).

    ``I;16*``: 0..65535; ``I`` holding 0..255 or 0..65535 values: that range; ``F`` within 0..1: that;
    anything else (signed, larger, float beyond 0..1): the image's own finite min..max.
    """
    array = np.asarray(image).astype(np.float64)
    finite = np.isfinite(array)
    lo = float(array[finite].min()) if finite.any() else 0.0
    hi = float(array[finite].max()) if finite.any() else 1.0
    mode = image.mode
    if mode.startswith("I;16") and not mode.endswith("S"):
        lo, hi = 0.0, 65535.0
    elif mode == "F" and lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif mode.startswith("I") and lo >= 0.0 and hi <= 255.0:
        lo, hi = 0.0, 255.0
    elif mode.startswith("I") and lo >= 0.0 and hi <= 65535.0:
        lo, hi = 0.0, 65535.0
    scaled = (np.where(finite, array, lo) - lo) / max(hi - lo, 1e-12)
    return Image.fromarray(np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8), "L")


def pil_to_uint8(image: Image.Image, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Any PIL image -> (uint8 [3, size, size] RGB, original (h, w))."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        image = _high_depth_to_l(image)
    if image.mode != "RGB":
        if image.mode in ("P", "LA", "PA") or "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode == "RGBA":  # composite transparency on white, not black
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = image.convert("RGB")
    w, h = image.size
    resized = image.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    array = np.asarray(resized, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), (h, w)


class _Decoded(Dataset):
    """Bank position -> (uint8 image, original size, label, position, error), decoding with PIL.

    ``indices`` maps bank positions to split indices (the images a bank keeps; all when None). A file
    that cannot be decoded does not raise (in a DataLoader worker the traceback would be printed twice
    and name no file): ``error`` says why (``""`` for a good image), with a blank image.
    """

    def __init__(self, source: LabeledImages, size: int, indices: list[int] | None = None):
        self.source, self.size, self.indices = source, size, indices

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.source)

    def split_index(self, position: int) -> int:
        return self.indices[position] if self.indices is not None else position

    def __getitem__(self, position: int):
        try:
            image, label = self.source[self.split_index(position)]
            tensor, (h, w) = pil_to_uint8(image, self.size)
        except Exception as exc:  # the image's fault (truncated, not an image, a bomb, an odd mode…)
            blank = torch.zeros(3, self.size, self.size, dtype=torch.uint8)
            return blank, torch.tensor([0, 0]), -1, position, _reason(exc)
        return tensor, torch.tensor([h, w]), int(label), position, ""

    def bad_in(self, positions: torch.Tensor, errors: list[str]) -> list[BadImage]:
        """The images of a decoded batch that failed, by split index and file."""
        out = []
        for position, error in zip(positions.tolist(), errors, strict=True):
            if error:
                index = self.split_index(int(position))
                out.append(BadImage(index, image_name(self.source, index), error))
        return out


@dataclass
class ImageBank:
    """A split ready for batching: cached tensors, or a decoder for streaming."""

    labels: torch.Tensor
    classes: list[str]
    images: torch.Tensor | None = None  # uint8 [N, C, H, W] when cached
    sizes: torch.Tensor | None = None  # [N, 2] original (h, w) when cached
    source: _Decoded | None = None
    num_workers: int = 0
    side: int = 0  # stored square side S (0: the images' own size, equal-size in-memory data)
    skipped: list[BadImage] = field(default_factory=list)  # undecodable images left out (data.skip_bad_images)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes the stored images take (0 when streamed)."""
        return 0 if self.images is None else self.images.numel() * self.images.element_size()

    def where(self) -> str:
        """Where the images live: ``GPU memory``, ``pinned host memory``, ``host memory`` or ``streamed``."""
        if self.images is None:
            return f"streamed (decoded each epoch by {self.num_workers} workers)"
        if self.images.device.type == "cuda":
            return "GPU memory"
        return "pinned host memory" if self.images.is_pinned() else "host memory"

    def describe(self) -> str:
        """One line for the run log: count, stored size, bytes, place."""
        h, w = self.images.shape[-2:] if self.images is not None else (self.side, self.side)
        size = f"{self.nbytes / 2**30:.2f} GiB" if self.images is not None else "not cached"
        skipped = f"; left out {describe_bad_images(self.skipped)}" if self.skipped else ""
        return f"{len(self)} images stored at {h}x{w} px ({size}) in {self.where()}{skipped}"

    def place(self, device: torch.device) -> ImageBank:
        """Move cached images to ``device`` when it is a GPU with room for them, else pin them in host memory."""
        if self.images is None or device.type != "cuda":
            return self
        free, _ = torch.cuda.mem_get_info(device)
        if self.nbytes <= GPU_FRACTION_OF_FREE * free:
            self.images, self.sizes = self.images.to(device), self.sizes.to(device)  # labels stay on the CPU
        else:
            self.images = self.images.pin_memory()
        return self

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        """One batch per chunk of instance ids, in that order (see :func:`in_chunks`)."""
        if self.images is not None:
            for idx in chunks:
                yield self.images[idx], self.sizes[idx], self.labels[idx], idx
            return
        loader = DataLoader(
            self.source,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.num_workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        for images, sizes, labels, idx, errors in loader:
            bad = self.source.bad_in(idx, errors)
            if bad:  # left out when the bank was built, if skipping: so this file changed since
                raise bad_images_error(bad)
            yield images, sizes, labels, idx


def in_chunks(order: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``order`` cut into chunks of ``size`` (the last one smaller): every index once."""
    return list(torch.split(order, size))


def _cache_budget() -> int:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return int(min(CACHE_MAX_BYTES, CACHE_FRACTION_OF_RAM * ram))


def build_bank(
    split: LabeledImages,
    side: int,
    *,
    cache: str = "auto",
    num_workers: int = 2,
    on_progress: Callable[[int, int], None] | None = None,
    skip_bad: bool = False,
) -> ImageBank:
    """Prepare ``split`` with its images stored at ``side`` px (capped at its largest image; see the module
    docstring), decoded into host memory when they fit the budget, else streamed.

    Images that cannot be decoded: :class:`BadImagesError` naming every one, or with ``skip_bad`` a bank
    without them (``bank.skipped`` says which)."""
    classes = list(split.classes)
    tensors = getattr(split, "tensors", None)
    if tensors is not None:  # small in-memory dataset of equal-size images: used as is
        images, labels = tensors
        sizes = torch.tensor(images.shape[-2:]).repeat(images.shape[0], 1)
        return ImageBank(labels.long(), classes, images, sizes)
    largest = largest_side(split)
    size = min(side, _round16(largest)) if largest else side
    decoded = _Decoded(split, size)
    n = len(decoded)
    want_cache = cache == "yes" or (cache == "auto" and n * 3 * size * size <= _cache_budget())
    if not want_cache:
        # streamed: decoded again each epoch. With skip_bad, one pass now finds the images to leave out,
        # so that every epoch, the kNN monitor and the test see the same images; otherwise a bad file
        # stops training when its batch is decoded, named.
        bad = _decode_pass(decoded, num_workers, on_progress)[1] if skip_bad else []
        _check_bad(bad, n, skip_bad)
        left_out = {b.index for b in bad}
        keep = [i for i in range(n) if i not in left_out]
        labels = torch.tensor([_label_of(split, i) for i in keep], dtype=torch.long)
        source = _Decoded(split, size, keep if bad else None)
        bank = ImageBank(labels, classes, source=source, num_workers=num_workers, side=size)
        bank.skipped = bad
        return bank
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    sizes = torch.empty(n, 2, dtype=torch.long)
    labels = torch.empty(n, dtype=torch.long)

    def store(batch, hw, lab, idx):
        images[idx], sizes[idx], labels[idx] = batch, hw, lab

    _, bad = _decode_pass(decoded, num_workers, on_progress, store)
    _check_bad(bad, n, skip_bad)
    if bad:
        keep = torch.ones(n, dtype=torch.bool)
        keep[[b.index for b in bad]] = False
        images, sizes, labels = images[keep], sizes[keep], labels[keep]
    bank = ImageBank(labels, classes, images, sizes, side=size)
    bank.skipped = bad
    return bank


def _decode_pass(
    decoded: _Decoded,
    num_workers: int,
    on_progress: Callable[[int, int], None] | None,
    store: Callable[..., None] | None = None,
) -> tuple[int, list[BadImage]]:
    """Decode every image once (in DataLoader workers), handing each batch to ``store``; returns
    (count, the images that failed, in split order)."""
    n = len(decoded)
    loader = DataLoader(decoded, batch_size=64, num_workers=num_workers, shuffle=False)
    done = 0
    bad: list[BadImage] = []
    for batch, hw, lab, idx, errors in loader:
        if store is not None:
            store(batch, hw, lab, idx)
        bad += decoded.bad_in(idx, errors)
        done += len(idx)
        if on_progress:
            on_progress(done, n)
    return done, sorted(bad, key=lambda b: b.index)


def _check_bad(bad: list[BadImage], n: int, skip_bad: bool) -> None:
    if bad and (not skip_bad or len(bad) == n):
        raise bad_images_error(bad)


def _label_of(split: LabeledImages, index: int) -> int:
    for attr in ("targets", "labels"):
        values = getattr(split, attr, None)
        if values is not None and not callable(values) and len(values) == len(split):
            return int(values[index])
    try:
        return int(split[index][1])
    except Exception:  # an image that cannot be decoded: reported (or skipped) when its batch is decoded
        return -1
