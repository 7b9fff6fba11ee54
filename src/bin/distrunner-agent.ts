#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1
// A young generation of 1 MiB keeps a busy agent at ~80 MB instead of ~110 MB after
// bursts of sessions, and two malloc arenas (not one per thread) about 20 MB less after
// large streams; neither costs CPU (docs/benchmarks.md). Commands do not inherit them.
import { main } from '../agent/main.js';

void main();
