"""Shared fixtures: a calibrated site file (real mode refuses to start without one)."""

import pytest
import yaml

from sgft_bringup.graph import share_dir

# a camera pose no task YAML holds: what a calibration would write
CALIBRATED = [1.1, -0.5, 0.7, -0.808559, -0.382356, 0.1912, 0.404326]


def write_site(path, **changes):
    data = yaml.safe_load((share_dir() / "config" / "site_template.yaml").read_text())
    data["site"]["cameras"][0]["extrinsics"] = list(CALIBRATED)
    for key, value in changes.items():
        if value is None:
            data["site"].pop(key, None)
        else:
            data["site"][key] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def real_site(tmp_path):
    return write_site(tmp_path / "site.yaml")
