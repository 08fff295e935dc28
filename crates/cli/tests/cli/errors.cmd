# Bad input is named, with the cause.
cairn hash r02-wasm-compose-a.bad-version.wasm
cairn inspect no-such-file.wasm
cairn split LICENSES.md -o {tmp}/nothing
# A join refuses a corrupted blob, a missing one, and the wrong expected tree, and writes nothing.
cairn split b01-fac.component.wasm -o {tmp}/fac
cairn join {tmp}/fac -o {tmp}/fac.wasm --tree-digest sha256:0000000000000000000000000000000000000000000000000000000000000000
corrupt {tmp}/fac/dca0fe854ba50f2e5653bc5f63d768761c21228e8539ec13b13a03f878a2b645
cairn join {tmp}/fac -o {tmp}/fac.wasm
cairn hash {tmp}/fac.wasm
remove {tmp}/fac/dca0fe854ba50f2e5653bc5f63d768761c21228e8539ec13b13a03f878a2b645
cairn join {tmp}/fac -o {tmp}/fac.wasm
# A duration is named with its unit, and one too long to hold is refused, not a crash.
cairn serve --checkpoint-interval 5x
cairn serve --checkpoint-interval 999999999999999999999999999h
cairn update --max-checkpoint-age soon
