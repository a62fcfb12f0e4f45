# Entry points. `make demo` runs the main job; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.PHONY: bootstrap build test demo lint clean

bootstrap:
	tools/bootstrap.sh

build: bootstrap
	source setup.bash && colcon build --event-handlers console_cohesion+ summary+

test:
	tools/run_tests.sh

demo: build
	source setup.bash && tools/demo.sh

lint: bootstrap
	source setup.bash && ruff check .

clean:
	rm -rf build install log
