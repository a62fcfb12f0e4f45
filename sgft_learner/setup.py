from setuptools import find_packages, setup

package_name = "sgft_learner"

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
    description="SGFT learner node: durable transition store, training thread, weights out.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},  # colcon picks pytest from here (tests_require is gone)
    entry_points={"console_scripts": ["learner_node = sgft_learner.learner_node:main"]},
)
