"""Collecting decoded images into one uint8 NCHW array without per-image arrays.

The count is unknown while an archive streams, so images go into fixed-size numpy
chunks that are copied once into the final array (each chunk freed as it is
copied, so peak memory stays near one copy of the data plus one chunk). numpy only:
this runs in the upload sandbox, which does not import torch (see
`repair_core.datasets.arrays`).
"""

from __future__ import annotations

import numpy as np

from repair_core.errors import LimitExceededError

_CHUNK_IMAGES = 4096


class ImageBuffer:
    """Appends (H, W, C) uint8 arrays of one shape; `finish()` gives (N, C, H, W)."""

    def __init__(self, shape_chw: tuple[int, int, int], *, max_bytes: int) -> None:
        self.shape_chw = shape_chw
        self._max_bytes = max_bytes
        self._image_bytes = int(np.prod(shape_chw))
        self._chunks: list[np.ndarray] = []
        self._fill = _CHUNK_IMAGES  # position in the last chunk; full means "allocate"
        self.count = 0

    def append(self, pixels_hwc: np.ndarray) -> int:
        """Store one image of the buffer's shape; returns its row index."""
        if (self.count + 1) * self._image_bytes > self._max_bytes:
            raise LimitExceededError(
                f"decoded images pass max_decoded_bytes={self._max_bytes}",
                limit="max_decoded_bytes",
                value=self._max_bytes,
            )
        if self._fill == _CHUNK_IMAGES:
            self._chunks.append(np.empty((_CHUNK_IMAGES, *self.shape_chw), dtype=np.uint8))
            self._fill = 0
        self._chunks[-1][self._fill] = pixels_hwc.transpose(2, 0, 1)
        self._fill += 1
        self.count += 1
        return self.count - 1

    def finish(self) -> np.ndarray:
        out = np.empty((self.count, *self.shape_chw), dtype=np.uint8)
        start = 0
        while self._chunks:
            chunk = self._chunks.pop(0)
            n = min(len(chunk), self.count - start)
            out[start : start + n] = chunk[:n]
            start += n
        return out
