# Top-level entry points. Meson does the building; this file only strings the
# steps together so that a fresh machine needs exactly two commands.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
RUN_DIR    ?= run
FUZZ_SECONDS ?= 15

.PHONY: all build run test unit-test asan-test fuzz-test integration-test bench deps-build deps-test clean distclean

all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

build: deps-build $(BUILD)/build.ninja
	ninja -C $(BUILD)

# make run: a data directory under the checkout, the embedded SQLite store,
# listening on loopback. The atlas.xml is made once from the example.
run: build
	@mkdir -p $(RUN_DIR)
	@[ -f $(RUN_DIR)/atlas.xml ] || sed -e 's|<DataDirectory>.*</DataDirectory>|<DataDirectory>data</DataDirectory>|' atlas.xml.example > $(RUN_DIR)/atlas.xml
	exec $(BUILD)/atriumd -c $(RUN_DIR)/atlas.xml

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debug -Dfuzz=true -Db_lundef=false

unit-test: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

asan-test: deps-test $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs

fuzz-test: deps-test $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

integration-test: deps-test build node_modules/.package-lock.json
	ATRIUMD=$(abspath $(BUILD))/atriumd ATRIUMCTL=$(abspath $(BUILD))/atriumctl \
	  node --test --test-concurrency=1 tests/integration/

test: deps-test build unit-test asan-test fuzz-test integration-test

bench: build
	@scripts/deps.sh bench
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

distclean: clean
	rm -rf $(RUN_DIR) node_modules
