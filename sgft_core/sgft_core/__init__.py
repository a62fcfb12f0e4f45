"""SGFT algorithms without ROS or MuJoCo: task specs, networks, SAC and SGFT learners, dynamics model, MPPI, replay
buffer, checkpoints, safety envelope."""
