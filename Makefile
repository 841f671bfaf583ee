# The two commands of the README: `make run` and `make test`. Everything else is set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck browser bench bench-deps soak screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/mailhaven serve --dev

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# [tool.mypy] in pyproject.toml: src/, strict for new modules.
typecheck: $(VENV)/.installed
	$(BIN)/mypy

# The browser tests run after the rest, so that chromium's load never overlaps the tests
# that time real SMTP sessions and killed workers.
test: $(VENV)/.installed browser lint typecheck
	$(BIN)/pytest -n 2 --ignore=tests/web
	$(BIN)/pytest -n 2 tests/web

# Pages are tested in a real browser: Playwright driving Debian's chromium (no browser can
# be downloaded from anywhere else here); installed only when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# bench/postfix.py compares with Postfix from Debian's packages (and its smtp-sink and
# smtp-source) with Debian's OpenDKIM as its signing milter; each installed only when
# missing, answering debconf's question for Postfix. Neither system service is used: the
# bench starts private instances of both.
bench-deps:
	@PATH="$$PATH:/usr/sbin" command -v postfix >/dev/null 2>&1 || { \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix; }
	@PATH="$$PATH:/usr/sbin" command -v opendkim >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opendkim; }

# The benchmarks' own extra (pyproject.toml's `bench`: matplotlib), beside the dev one.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

# Every script on SQLite and PostgreSQL, then docs/BENCHMARKS.md (bench/run.py).
bench: $(VENV)/.bench-installed bench-deps
	$(BIN)/python bench/run.py

# Issue 17's soak, not part of `make bench`: 30 minutes of `serve` on PostgreSQL at 70% of
# its peak; prints a row a minute and its verdicts, writes docs/soak.png (docs/soak.md).
soak: $(VENV)/.bench-installed
	$(BIN)/python bench/soak.py --minutes 30

# PNGs of the main pages in docs/screenshots/ (scripts/screenshots.py), from `serve --dev`.
screenshots: $(VENV)/.installed browser
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
