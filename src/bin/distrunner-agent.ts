#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1
// A young generation of 1 MiB keeps a busy agent at ~80 MB instead of ~110 MB after
// bursts of sessions, and two malloc arenas (not one per thread) about 20 MB less after
// large streams; neither costs CPU (docs/benchmarks.md). Commands do not inherit them.
import { closeInheritedDescriptors, holdReloadSignals } from '../agent/process-start.js';

// Before the rest of the agent is loaded: a SIGHUP from now on is a reload, not death,
// and no descriptor the agent was started with reaches a command.
holdReloadSignals();
const inherited = closeInheritedDescriptors();
const { main } = await import('../agent/main.js');
await main(process.argv, { inheritedDescriptors: inherited });
