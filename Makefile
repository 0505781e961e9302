# One command per job:   make test | make test-fast | make lint | make reliability
#                         | make reliability-ci | make image-check
#   make test-fast        the tests that start no engine and no browser and are not slow (~2 min)
#   make reliability      the whole reliability suite, full form (load 64 clients x 60 s x 3
#                         rounds), then the figures (artifacts/reliability/figures.md) ~20 min
#   make reliability-ci   the same suite in its bounded form (what CI runs inside `make test`)
#                         ~5 min
#   make image-check      build the real Dockerfile FROM a CPU stand-in for the vLLM image (no
#                         Docker Hub, no GPU), serve from it with no network, record the figures
#                         (bench/image_check.jsonl); needs root; not in CI; 20-40 min on 2 cores
#                         (DOCKERFILE=Dockerfile.metax for the MetaX one)
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

.PHONY: test test-fast lint reliability reliability-ci figures image-check

test:
	bash scripts/test.sh

test-fast:
	$(PY) -m pytest -q -p no:cacheprovider -m "not engine and not slow and not browser"

lint:  # scripts/lint.sh expects the venv's tools on PATH (scripts/test.sh activates it)
	PATH="$(CURDIR)/.venv/bin:$$PATH" bash scripts/lint.sh

reliability:
	mkdir -p $(ART) && rm -f $(ART)/junit-*.xml
	$(PYTEST) -s $(ALSO) --junitxml=$(ART)/junit-e2e.xml 2>&1 | tee $(ART)/pytest-e2e.log
	RELIABILITY_FULL=1 $(PYTEST) -s $(RELIABILITY) --junitxml=$(ART)/junit-reliability.xml \
		2>&1 | tee $(ART)/pytest-reliability.log
	$(MAKE) --no-print-directory figures

reliability-ci:
	mkdir -p $(ART) && rm -f $(ART)/junit-*.xml
	$(PYTEST) $(RELIABILITY) --junitxml=$(ART)/junit-reliability.xml
	$(MAKE) --no-print-directory figures

figures:
	$(PY) -m tests.support.figures | tee $(ART)/figures.md

DOCKERFILE ?= Dockerfile
image-check:  # root: debootstrap, chroot and buildah (see the script's header)
	bash scripts/image_check.sh $(DOCKERFILE)
