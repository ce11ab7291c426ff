#!/bin/sh
# The same hub binary with direct writes off (the A/B's "task" side).
MERCURE_EXTRA_DIRECTIVES="${MERCURE_EXTRA_DIRECTIVES}
direct_writes off"
export MERCURE_EXTRA_DIRECTIVES
exec /work/main/target/release/mercure-hub "$@"
