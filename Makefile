# Two commands: `make serve` runs the gateway, `make test` runs every test.
# Both create the environment first (Python venv, npm packages) when it is missing or stale.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: serve test setup system-deps bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Node is optional for serving (the SSE + POST demo works without it); when npm is
# there, socket.io-client (served to browsers) and the reference socket.io server come from npm.
node_modules/.installed: package.json package-lock.json
	if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: Socket.IO options of the demo page and the Node tests are unavailable"; fi

serve: setup
	$(PY) -m gateway --host $(HOST) --port $(PORT) --log-level info

# Chromium, nginx and a Redis server for the browser, proxy and scale-out tests (as root, from Debian).
system-deps:
	bash scripts/system-deps.sh

# Static checks first, and they fail the run: mypy --strict over what ships (gateway and
# rtclient, as [tool.mypy] says) and ruff over everything (rules in [tool.ruff.lint]).
# Then most tests wait on the network, not the CPU: three workers (by file, so each file's
# servers start once). Tests that measure throughput run afterwards, alone, so they measure the code.
test: setup system-deps
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 3 --dist loadfile -m "not serial"
	$(PY) -m pytest -m serial

bench: setup
	$(PY) -m comparison bench

clean:
	rm -rf $(VENV) node_modules test-artifacts
