"""ament_python package vsgg_nodes: the ROS 2 adapters of the vsgg engine (colcon build, or pip install -e)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vsgg_nodes"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="vsgg",
    maintainer_email="vsgg@example.invalid",
    description="ROS 2 adapters of the vsgg streaming scene-graph engine",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "scene_graph_node = vsgg_nodes.scene_graph_node:main",
            "video_source_node = vsgg_nodes.video_source_node:main",
        ],
        # plugins of the `vsgg` command line (engine/cli/main.py); they exist only where vsgg_nodes is installed,
        # so engine/ never imports rclpy or rosbags-based code
        "vsgg.commands": ["ros-launch = vsgg_nodes.launch_cli:add_parser"],
        "vsgg.benchmarks": ["ros = vsgg_nodes.bench_ros:add_parser"],
        "vsgg.sinks": ["rosbag = vsgg_nodes.bag_writer:open_sink"],
    },
)
