"""Where an installed package's share directory is (configs, checkpoints, launch files), for code that also runs
from a source checkout."""

from __future__ import annotations

from pathlib import Path


def installed_share(package: str) -> Path | None:
    """`package`'s share directory from the ament index (after `colcon build` and sourcing), else None."""
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(package))
    except LookupError:  # ament_index_python's PackageNotFoundError is a KeyError
        return None
