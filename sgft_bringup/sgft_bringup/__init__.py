"""Start the SGFT graph: per-task YAML, one graph definition for launch files and for `run_graph`."""
