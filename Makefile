# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= rix-data

# the OHIF viewer and htmx (their versions pinned in src/rix/cli/viewer.py) for the tests
VIEWER_DIR := build/ohif
ASSETS_DIR := build/assets
# axe-core: the portal's accessibility tests run it in the browser (never served by rix)
AXE_VERSION := 4.11.0

.PHONY: run test check venv deps-test debs browser npm viewer assets bench clean

$(BIN)/rix: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/rix

venv: $(BIN)/rix

## make run: install rix, load the demo region, serve DICOM on 11112 and HTTP on 8042
run: venv debs npm
	$(BIN)/rix viewer install --data $(DATA)
	$(BIN)/rix demo --data $(DATA)
	@echo
	@echo "rix is starting. Try, from another terminal:"
	@echo "  findscu -S -k QueryRetrieveLevel=STUDY -k PatientName= -aet EMH_PACS -aec RIX 127.0.0.1 11112"
	@echo "  open the portal at http://127.0.0.1:8042/ and sign in (every demo user's password: rix-demo)"
	@echo "  as ngh.clinician, search Hartley: her timeline holds studies from NGH and EMH;"
	@echo "  as emh.clinician, NGH's are behind break-glass; region.admin sees /admin and /status"
	@echo "  as emh.radiologist: the shared reporting worklist (/worklist), /turnaround with its"
	@echo "  breaches, /rota; from a study's page, 'Share for a second opinion' (/shares)"
	@echo "  findscu -W -k PatientName= -aet EMH_PACS -aec RIX 127.0.0.1 11112   (the worklist)"
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

## npm packs the viewer and the portal's scripts from the npm registry
npm:
	@command -v npm >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)

## make viewer: the stock OHIF viewer (npm @ohif/app) prepared for /viewer/ in $(VIEWER_DIR)
## and htmx in $(ASSETS_DIR), as `rix viewer install` does for a data folder (never
## committed); does nothing when the pinned versions are there
viewer: venv npm
	@$(BIN)/rix viewer install --viewer-dir $(VIEWER_DIR) --portal-assets-dir $(ASSETS_DIR)

## make assets: axe-core, pinned, for the portal's accessibility tests, beside htmx
assets: viewer
	@test -f $(ASSETS_DIR)/axe-$(AXE_VERSION).stamp || { \
		rm -rf $(ASSETS_DIR)/.axe && mkdir -p $(ASSETS_DIR)/.axe && \
		npm pack --silent --pack-destination $(ASSETS_DIR)/.axe axe-core@$(AXE_VERSION) >/dev/null && \
		tar -xzf $(ASSETS_DIR)/.axe/axe-core-$(AXE_VERSION).tgz -C $(ASSETS_DIR)/.axe \
			package/axe.min.js --strip-components=1 && \
		mv $(ASSETS_DIR)/.axe/axe.min.js $(ASSETS_DIR)/axe.min.js && rm -rf $(ASSETS_DIR)/.axe && \
		rm -f $(ASSETS_DIR)/axe-*.stamp && touch $(ASSETS_DIR)/axe-$(AXE_VERSION).stamp; }

## make check: lint and types, the same locally and in CI
check: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## make test: install everything the tests need, then lint, type-check and run the suite
test: venv debs browser viewer assets check
	$(BIN)/pytest

## make bench: rix against Orthanc on the same data; appends to bench/RESULTS.md
bench: venv
	@command -v Orthanc >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
