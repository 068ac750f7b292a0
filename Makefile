# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= rix-data

.PHONY: run test check venv deps-test debs bench clean

$(BIN)/rix: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/rix

venv: $(BIN)/rix

## make run: install rix, load the demo region, serve DICOM on 11112 and HTTP on 8042
run: venv debs
	$(BIN)/rix demo --data $(DATA)
	@echo
	@echo "rix is starting. Try, from another terminal:"
	@echo "  findscu -S -k QueryRetrieveLevel=STUDY -k PatientName= -aet EMH_PACS -aec RIX 127.0.0.1 11112"
	@echo "  sign in at http://127.0.0.1:8042/login as emh.clinician (every demo user's password: rix-demo)"
	@echo "  TOKEN=\$$($(BIN)/rix token create ngh.clinician --data $(DATA))"
	@echo "  curl -H \"Authorization: Bearer \$$TOKEN\" 'http://127.0.0.1:8042/api/timeline?nhs_number=9434765919'"
	@echo
	$(BIN)/rix serve --data $(DATA) --accept-any-ae

## Debian packages the tests talk to (DCMTK is the outside DICOM peer)
debs:
	@command -v storescu >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk)

## make check: lint and types, the same locally and in CI
check: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## make test: install everything the tests need, then lint, type-check and run the suite
test: venv debs check
	$(BIN)/pytest

## make bench: rix against Orthanc on the same data; appends to bench/RESULTS.md
bench: venv
	@command -v Orthanc >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
