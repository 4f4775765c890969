"""Caps applied while reading untrusted archives, images and arrays.

Starting values come from docs/upload-safety.md ("Archives:" and "Images:"). The API
builds one from its settings; the offline CLI uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class IngestLimits:
    max_members: int = 2_000_000  # archive entries (files and folders)
    max_member_bytes: int = 64 * MiB  # decompressed bytes of one archive member
    max_total_bytes: int = 100 * GiB  # decompressed bytes of the whole archive
    max_ratio: float = 100.0  # zip member: decompressed / compressed bytes
    # Members that inflate to less than this are never bombs; without the grace a blank
    # 32x32 BMP (3 KB of zeros, ~30 B deflated) would trip the ratio cap.
    ratio_grace_bytes: int = 1 * MiB
    max_image_pixels: int = 4096 * 4096  # width * height of one image
    bad_image_tolerance: float = 0.01  # fraction of undecodable images a dataset may skip
    max_npy_bytes: int = 8 * GiB  # data bytes of one .npy array inside an .npz
    max_decoded_bytes: int = 32 * GiB  # all decoded pixels of a dataset, uint8
    max_name_bytes: int = 4096  # UTF-8 bytes of one member path
    max_component_bytes: int = 255  # UTF-8 bytes of one path component

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "bad_image_tolerance":
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"bad_image_tolerance must be in [0, 1), got {value}")
            elif value <= 0:
                raise ValueError(f"{field.name} must be positive, got {value}")
