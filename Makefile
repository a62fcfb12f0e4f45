# Entry points. `make demo` runs the main job; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.PHONY: bootstrap build test demo faults lint clean

bootstrap:
	tools/bootstrap.sh

build: bootstrap
	source setup.bash && colcon build --event-handlers console_cohesion+ summary+

test:
	tools/run_tests.sh

demo: build
	source setup.bash && tools/demo.sh

# The fault-injection suite (also part of `make test`): see the README's fault table.
faults: build
	source setup.bash && python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
	  sgft_core/test/test_safety.py sgft_core/test/test_checkpoint.py sgft_perception/test/test_perception_node.py \
	  sgft_policy/test/test_policy_node.py sgft_learner/test/test_learner_node.py sgft_learner/test/test_transition_store.py

lint: bootstrap
	source setup.bash && ruff check .

clean:
	rm -rf build install log
