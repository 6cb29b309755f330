# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make run    create .venv, install the locked dependencies, start the bot (paper mode)
#   make test   same set-up, then the gates (ruff, mypy, import contracts), then the test suite
#   make check  the gates alone;  make stress  the end-to-end test files 20 times in a row
# ARGS passes extra arguments, e.g. make run ARGS="--replay ../shared/data/binance-usdm/btcusdt_20240808.gz"

VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
UV_VER := 0.9.7
STAMP  := $(VENV)/.synced
SYSPY  ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            && { echo $$p; break; }; done)

.PHONY: run test check stress install bench clean vendor-charts

run: install
	$(PY) main.py run $(ARGS)

test: check
	$(PY) -m pytest $(ARGS)

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

stress: install
	$(PY) bench/stress.py $(ARGS)

bench: install
	$(PY) bench/replay_throughput.py $(ARGS)

# The dashboard's chart library, vendored as one minified file (web/static/vendor/): fetched
# from the npm registry with `npm pack`, its licence and version recorded next to it.
LWC_VER ?= 5.3.0
LWC_DIR := web/static/vendor
vendor-charts:
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent lightweight-charts@$(LWC_VER) >/dev/null \
	  && tar xzf lightweight-charts-$(LWC_VER).tgz \
	  && cp package/dist/lightweight-charts.standalone.production.js $(CURDIR)/$(LWC_DIR)/lightweight-charts.js \
	  && cp package/LICENSE $(CURDIR)/$(LWC_DIR)/lightweight-charts.LICENSE \
	  && sum=$$(sha256sum $(CURDIR)/$(LWC_DIR)/lightweight-charts.js | cut -d' ' -f1) \
	  && printf '{"package": "lightweight-charts", "version": "%s", "file": "dist/lightweight-charts.standalone.production.js", "license": "Apache-2.0", "sha256": "%s"}\n' "$(LWC_VER)" "$$sum" > $(CURDIR)/$(LWC_DIR)/lightweight-charts.json \
	  && rm -rf $$tmp && echo "lightweight-charts $(LWC_VER) vendored in $(LWC_DIR)"

install: $(STAMP)

$(PY):
	@test -n "$(SYSPY)" || { echo "error: Python 3.11 or newer is required (set SYSPY=/path/to/python3.11)"; exit 1; }
	$(SYSPY) -m venv $(VENV)

$(UV): | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VER)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --compile-bytecode --python $(PY)
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
