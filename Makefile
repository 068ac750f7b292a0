# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA ?= rix-data

OHIF_VERSION := 3.13.2
VIEWER_DIR := build/ohif
# npm packages the portal serves (htmx) and its tests run in the browser (axe-core)
HTMX_VERSION := 2.0.11
AXE_VERSION := 4.11.0
ASSETS_DIR := build/assets

.PHONY: run test check venv deps-test debs browser viewer assets bench clean

$(BIN)/rix: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/rix

venv: $(BIN)/rix

## make run: install rix, load the demo region, serve DICOM on 11112 and HTTP on 8042
run: venv debs viewer assets
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

## make assets: htmx for the portal and axe-core for its accessibility tests, pinned, from
## npm into $(ASSETS_DIR) (never committed); does nothing when both versions are there
assets:
	@test -f $(ASSETS_DIR)/htmx-$(HTMX_VERSION).stamp -a -f $(ASSETS_DIR)/axe-$(AXE_VERSION).stamp || { \
		command -v npm >/dev/null || ($(SUDO) apt-get update -qq && \
			$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm); \
		rm -rf $(ASSETS_DIR).new && mkdir -p $(ASSETS_DIR).new && \
		npm pack --silent --pack-destination $(ASSETS_DIR).new \
			htmx.org@$(HTMX_VERSION) axe-core@$(AXE_VERSION) >/dev/null && \
		tar -xzf $(ASSETS_DIR).new/htmx.org-$(HTMX_VERSION).tgz -C $(ASSETS_DIR).new \
			package/dist/htmx.min.js --strip-components=2 && \
		tar -xzf $(ASSETS_DIR).new/axe-core-$(AXE_VERSION).tgz -C $(ASSETS_DIR).new \
			package/axe.min.js --strip-components=1 && \
		rm $(ASSETS_DIR).new/*.tgz && \
		touch $(ASSETS_DIR).new/htmx-$(HTMX_VERSION).stamp $(ASSETS_DIR).new/axe-$(AXE_VERSION).stamp && \
		rm -rf $(ASSETS_DIR) && mv $(ASSETS_DIR).new $(ASSETS_DIR); }

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
