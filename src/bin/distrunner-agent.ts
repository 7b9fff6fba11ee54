#!/usr/bin/env -S node --max-semi-space-size=1
// The flag: a young generation of 1 MiB keeps a busy agent at ~80 MB instead of ~110 MB
// after bursts of sessions, and every command's fork copies less (docs/benchmarks.md).
import { main } from '../agent/main.js';

void main();
