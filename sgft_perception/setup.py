from glob import glob

from setuptools import find_packages, setup

package_name = "sgft_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="SGFT maintainers",
    maintainer_email="maintainers@sgft-ros.org",
    description="PointCloud2 to object position: field-offset parsing, extrinsics, workspace crop, HSV threshold.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},  # colcon picks pytest from here (tests_require is gone)
    entry_points={"console_scripts": ["perception_node = sgft_perception.perception_node:main"]},
)
