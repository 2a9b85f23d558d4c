# Two commands: `make demo` and `make test`. Both create .venv and install the package first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean browser screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/renewals demo

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tools.layout
	$(BIN)/python -m pytest

# The console's browser tests drive Debian's chromium (never a downloaded browser): installed
# here when missing and we may (root); without it those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  { echo "Installing Debian's chromium for the console's browser tests..."; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "Could not install chromium: the browser tests will skip."; }

# The console's screenshots in README (docs/screenshots/), taken by its browser tests.
screenshots: $(STAMP) browser
	RENEWALS_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/browser

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .pytest_cache
