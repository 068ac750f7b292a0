# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= rix-data

OHIF_VERSION := 3.13.2
VIEWER_DIR := build/ohif

.PHONY: run test check venv deps-test debs browser viewer bench clean

$(BIN)/rix: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/rix

venv: $(BIN)/rix

## make run: install rix, load the demo region, serve DICOM on 11112 and HTTP on 8042
run: venv debs viewer
	$(BIN)/rix demo --data $(DATA)
	@echo
	@echo "rix is starting. Try, from another terminal:"
	@echo "  findscu -S -k QueryRetrieveLevel=STUDY -k PatientName= -aet EMH_PACS -aec RIX 127.0.0.1 11112"
	@echo "  sign in at http://127.0.0.1:8042/login as emh.clinician (every demo user's password: rix-demo)"
	@echo "  then open the viewer: http://127.0.0.1:8042/viewer/"
	@echo "  TOKEN=\$$($(BIN)/rix token create ngh.clinician --data $(DATA))"
	@echo "  curl -H \"Authorization: Bearer \$$TOKEN\" 'http://127.0.0.1:8042/api/timeline?nhs_number=9434765919'"
	@echo
	$(BIN)/rix serve --data $(DATA) --accept-any-ae

## Debian packages the tests talk to (DCMTK is the outside DICOM peer)
debs:
	@command -v storescu >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk)

## The browser the portal's tests drive (Playwright uses Debian's Chromium, never its own)
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

## make viewer: the stock OHIF viewer (npm @ohif/app, pinned) prepared for /viewer/ in
## $(VIEWER_DIR), which is never committed; does nothing when that version is there
viewer: venv
	@$(BIN)/python -m rix.web.viewer installed $(OHIF_VERSION) $(VIEWER_DIR) || { \
		command -v npm >/dev/null || ($(SUDO) apt-get update -qq && \
			$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm); \
		rm -rf $(VIEWER_DIR).new && mkdir -p $(VIEWER_DIR).new && \
		npm pack --silent --pack-destination $(VIEWER_DIR).new @ohif/app@$(OHIF_VERSION) >/dev/null && \
		tar -xzf $(VIEWER_DIR).new/ohif-app-$(OHIF_VERSION).tgz -C $(VIEWER_DIR).new && \
		$(BIN)/python -m rix.web.viewer prepare $(VIEWER_DIR).new/package/dist && \
		rm -rf $(VIEWER_DIR) && mv $(VIEWER_DIR).new/package/dist $(VIEWER_DIR) && \
		rm -rf $(VIEWER_DIR).new; }

## make check: lint and types, the same locally and in CI
check: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## make test: install everything the tests need, then lint, type-check and run the suite
test: venv debs browser viewer check
	$(BIN)/pytest

## make bench: rix against Orthanc on the same data; appends to bench/RESULTS.md
bench: venv
	@command -v Orthanc >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
