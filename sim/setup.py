from setuptools import find_packages, setup

package_name = "sgft_sim"

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
    description="MuJoCo tasks, sim-to-sim real proxies, pretraining and the simulated robot node.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},  # colcon picks pytest from here (tests_require is gone)
    entry_points={"console_scripts": ["bench_env = sgft_sim.bench_env:main", "benchmark = sgft_sim.benchmark:main",
                                       "pretrain = sgft_sim.pretrain:main", "evaluate = sgft_sim.evaluate:main",
                                       "robot_node = sgft_sim.robot_node:main"]},
)
