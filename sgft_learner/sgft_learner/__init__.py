"""The SGFT learner node and its durable transition store."""
