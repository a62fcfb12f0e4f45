from setuptools import find_packages, setup

package_name = "sgft_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="SGFT maintainers",
    maintainer_email="maintainers@sgft-ros.org",
    description="The 5 Hz SGFT control loop with its safety envelope.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},  # colcon picks pytest from here (tests_require is gone)
    entry_points={"console_scripts": ["policy_node = sgft_policy.policy_node:main",
                                      "teleop = sgft_policy.teleop:main"]},
)
