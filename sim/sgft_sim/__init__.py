"""MuJoCo scenes and tasks for SGFT (Gymnasium API), domain randomization, sim-to-sim real proxies, pretraining, and a
simulated robot node speaking franka_ros2 and realsense2_camera topics."""
