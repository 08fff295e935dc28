# Split to a directory, join back, and check the result hashes the same.
cairn split b03-rs-calc.wac.component.wasm -o {tmp}/b03
cairn join {tmp}/b03 -o {tmp}/b03.wasm --tree-digest sha256:434736df0b2aa46fc20d718a0bf29767880e25ffe9c4e4347934a8c6ad9da1c8
cairn hash {tmp}/b03.wasm
# Splitting again writes no new blobs.
cairn split --json b03-rs-calc.wac.component.wasm -o {tmp}/b03
# A core module is one blob.
cairn split r03-wabt-fac.core.wasm -o {tmp}/fac
cairn join --json {tmp}/fac -o {tmp}/fac.wasm
