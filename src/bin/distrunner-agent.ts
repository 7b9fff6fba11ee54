#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1 --always-sparkplug
// A young generation of 1 MiB keeps a busy agent at ~80 MB instead of ~110 MB after
// bursts of sessions, and two malloc arenas (not one per thread) about 20 MB less after
// large streams; neither costs CPU (docs/benchmarks.md). Commands do not inherit them.
// V8's baseline compiler from a function's first call: an agent runs each session's code
// a few times an hour, not hot enough for V8 to tier it up by itself, and interpreted it
// costs about 1 ms more per session (19%; about 3 MB more memory).
import { closeInheritedDescriptors, holdReloadSignals } from '../agent/process-start.js';

// Before the rest of the agent is loaded: a SIGHUP from now on is a reload, not death,
// and no descriptor the agent was started with reaches a command.
holdReloadSignals();
const inherited = closeInheritedDescriptors();
const { main } = await import('../agent/main.js');
await main(process.argv, { inheritedDescriptors: inherited });
