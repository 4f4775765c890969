"""Batched, on-device training augmentation: random crop with padding, flip, cutout.

The DARTS protocol augments every image with a padded random crop and a horizontal flip
(search and retraining alike: the search's `EpochBatches` uses `crop_flip` from here with
offsets it drew up front), and retraining adds cutout. Doing that per image in a Python
data loader starves a GPU, so here each transform handles a whole (N, C, H, W) batch with a
few tensor ops on the batch's device, and every random draw comes from an explicit
`torch.Generator` on that same device (no global RNG, no host sync).

Defaults (padding 4, cutout 16) are the DARTS values for 32x32 images; callers scale them for
other sizes.
"""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError


def _check_batch(images: torch.Tensor, generator: torch.Generator, name: str) -> None:
    if images.dim() != 4:
        raise RepairInputError(f"{name}: images must be (N, C, H, W), got {tuple(images.shape)}")
    if generator.device.type != images.device.type:
        raise RepairInputError(
            f"{name}: generator is on {generator.device} but images are on {images.device}; "
            "create the generator on the data's device"
        )


def crop(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad every side by `padding`, then crop image i back at `offsets[i]` = (dy, dx).

    `offsets` is (N, 2) int64 on the images' device, each entry in 0..2*padding. Keeps dtype
    and shape; works on uint8 and float alike (the search crops float, retraining uint8).
    """
    if images.dim() != 4 or tuple(offsets.shape) != (images.shape[0], 2):
        raise RepairInputError(
            f"crop: need images (N, C, H, W) and offsets (N, 2), got {tuple(images.shape)} "
            f"and {tuple(offsets.shape)}"
        )
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0:1] + torch.arange(h, device=images.device)  # (N, H)
    cols = offsets[:, 1:2] + torch.arange(w, device=images.device)  # (N, W)
    # One advanced-indexing gather builds the whole cropped batch; index tensors broadcast to
    # (N, C, H, W) so no per-image Python loop is needed.
    batch_index = torch.arange(n, device=images.device)[:, None, None, None]
    channel_index = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


def flip_where(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of the bool (N,) `flips` is True."""
    return torch.where(flips[:, None, None, None], images.flip(3), images)


def crop_flip(
    images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int
) -> torch.Tensor:
    """`crop` at the given offsets, then `flip_where`: the draws are the caller's."""
    return flip_where(crop(images, offsets, padding), flips)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad every side by `padding` pixels, then crop each image back at a random offset.

    Same as torchvision's `RandomCrop(size, padding)` applied per image: each image gets its
    own offset, uniform over the 2*padding+1 positions per axis. Keeps dtype and shape.
    """
    _check_batch(images, generator, "random_crop")
    if padding < 0:
        raise RepairInputError(f"random_crop: padding must be >= 0, got {padding}")
    if padding == 0 or images.shape[0] == 0:
        return images
    n = images.shape[0]
    # Drawn as (2, N), rows then columns: the order the retraining RNG stream has always had.
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=images.device)
    return crop(images, offsets.T, padding)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2. Keeps dtype and shape."""
    _check_batch(images, generator, "random_flip")
    flips = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return flip_where(images, flips)


def cutout(
    images_float: torch.Tensor,
    length: int,
    generator: torch.Generator,
    *,
    fill: float = 0.0,
) -> torch.Tensor:
    """Set one `length` x `length` square per image to `fill` (DARTS cutout).

    As in DARTS, the square's centre is uniform over the whole image and the square is clipped
    at the borders, so near an edge less than length^2 pixels are cut. DARTS cuts after
    normalisation, so its square holds the dataset mean; our models normalise internally and
    take [0, 1] input, so the default fill 0.0 is black instead (pass the mean to match).
    """
    _check_batch(images_float, generator, "cutout")
    if not images_float.is_floating_point():
        raise RepairInputError(f"cutout: images must be float, got {images_float.dtype}")
    if length < 0:
        raise RepairInputError(f"cutout: length must be >= 0, got {length}")
    if length == 0 or images_float.shape[0] == 0:
        return images_float
    n, _, h, w = images_float.shape
    device = images_float.device
    centre_y = torch.randint(0, h, (n, 1), generator=generator, device=device)
    centre_x = torch.randint(0, w, (n, 1), generator=generator, device=device)
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    # DARTS clips [c - length//2, c + length//2) to the image, so odd lengths cut length-1.
    in_rows = (ys >= centre_y - length // 2) & (ys < centre_y + length // 2)  # (N, H)
    in_cols = (xs >= centre_x - length // 2) & (xs < centre_x + length // 2)  # (N, W)
    cut = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
    return images_float.masked_fill(cut[:, None, :, :], fill)


def augment_batch(
    images_uint8: torch.Tensor,
    *,
    padding: int = 4,
    flip: bool = True,
    cutout_length: int = 16,
    generator: torch.Generator,
) -> torch.Tensor:
    """Crop, flip and cut out a uint8 batch; return float32 in [0, 1], same shape.

    Crop and flip run on uint8 (a quarter of the memory traffic of float); cutout runs on the
    float copy. `padding=0`, `flip=False` or `cutout_length=0` turn that step off.
    """
    if images_uint8.dtype != torch.uint8:
        raise RepairInputError(f"augment_batch: images must be uint8, got {images_uint8.dtype}")
    images = random_crop(images_uint8, padding, generator)
    if flip:
        images = random_flip(images, generator)
    images_float = images.float().div_(255.0)
    return cutout(images_float, cutout_length, generator)
