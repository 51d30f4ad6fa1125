EXTRA_DIST += scripts/setup scripts/check scripts/demo scripts/make-test-model scripts/fetch-default-model \
	scripts/bench-foundation scripts/bench-quantize scripts/bench-kv scripts/bench-allocation scripts/bench-cpu-speed scripts/device-compare-transformers .ci/run scripts/fuzz
