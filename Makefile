# Entry points. `make demo` runs the main job; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.PHONY: bootstrap build test demo demo-operator faults lint clean

bootstrap:
	tools/bootstrap.sh

build: bootstrap
	source setup.bash && colcon build --event-handlers console_cohesion+ summary+

test:
	tools/run_tests.sh

demo: build
	source setup.bash && tools/demo.sh

# The real-robot path (reset server, operator, labels, an intervention, recordings) against the simulated robot.
demo-operator: build
	source setup.bash && tools/demo_operator.sh

# The fault-injection suite (also part of `make test`): every test marked `faults` (see the README's fault table).
faults: build
	source setup.bash && python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -m faults \
	  sgft_core/test sgft_msgs/test sgft_perception/test sgft_policy/test sgft_learner/test sim/test test

lint: bootstrap
	source setup.bash && ruff check .

clean:
	rm -rf build install log
