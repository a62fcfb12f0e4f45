from glob import glob

from setuptools import find_packages, setup

package_name = "sgft_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + package_name + "/config/profiles", glob("config/profiles/*.yaml")),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
        ("share/" + package_name + "/checkpoints", glob("checkpoints/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="SGFT maintainers",
    maintainer_email="maintainers@sgft-ros.org",
    description="Start the SGFT graph: YAML, launch files, rviz, checkpoints, run_graph, finetune_session.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},  # colcon picks pytest from here (tests_require is gone)
    entry_points={"console_scripts": [
        "run_graph = sgft_bringup.run_graph:main",
        "finetune_session = sgft_bringup.finetune_session:main",
        "profiles = sgft_bringup.profiles:main",
        "site = sgft_bringup.site:main",
        "recorder = sgft_bringup.recorder:main",
        "reset_server = sgft_bringup.reset_server:main",
    ]},
)
