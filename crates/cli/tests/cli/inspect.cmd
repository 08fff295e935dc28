# The fragment tree of a composition of three Rust components.
cairn inspect b03-rs-calc.wac.component.wasm
cairn inspect --json b01-fac.component.wasm
