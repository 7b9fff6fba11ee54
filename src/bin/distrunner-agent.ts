#!/usr/bin/env node
import { main } from '../agent/main.js';

void main();
