"""The CIFAR-10-C corruption suite: 15 corruptions x 5 severities on uint8 image batches.

from repair_core.corruptions import corrupt, CORRUPTION_NAMES
foggy = corrupt(images, "fog", 5, seed=0)  # uint8 (N, C, H, W) in and out
"""

from repair_core.corruptions.registry import (
    CORRUPTION_NAMES,
    CORRUPTIONS,
    SEVERITIES,
    Corruption,
    corrupt,
    corrupt_in_chunks,
    get_corruption,
)

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_NAMES",
    "SEVERITIES",
    "Corruption",
    "corrupt",
    "corrupt_in_chunks",
    "get_corruption",
]
