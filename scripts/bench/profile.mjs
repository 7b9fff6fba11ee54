// Where a session's time goes, from V8 CPU profiles (node --cpu-prof): every sample is
// put in the bucket of the innermost stack frame that belongs to one, so time spent in
// Node's stream code on behalf of the renderers counts as output, not as streams.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// Checked in order against each frame, innermost first.
const BUCKETS = [
  ['process spawn', /node:(internal\/)?child_process|agent\/command-process/],
  ['framing', /src\/protocol\//],
  ['logging and audit', /node_modules\/pino|node_modules\/sonic-boom|thread-stream|agent\/audit/],
  ['output', /cli\/output\/|node:internal\/fs\/|node:fs/],
  ['TLS handshake (JS side)', /node:_tls_wrap|node:_tls_common|node:tls|getPeerCertificate/],
  ['session logic', /agent\/session|agent\/server|agent\/policy|cli\/execution\//],
  [
    'start-up (module loading, CLI parsing, inventory)',
    /node:internal\/modules|node:internal\/bootstrap|node_modules\/commander|node_modules\/yaml|cli\/targeting\/|cli\/main/,
  ],
  ['sockets and streams', /node:net|node:internal\/stream_base|node:internal\/streams|node:stream|node:events/],
];
const NATIVE = '(program)';
const GC = '(garbage collector)';

/** Milliseconds per bucket in one .cpuprofile, idle time left out. */
export function bucketsOfProfile(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const bucketOfNode = new Map();
  const bucketOf = (id) => {
    if (bucketOfNode.has(id)) return bucketOfNode.get(id);
    let found;
    const leaf = byId.get(id).callFrame;
    if (leaf.functionName === '(idle)') found = null;
    else if (leaf.functionName === GC) found = 'garbage collection';
    else if (leaf.functionName === NATIVE) found = 'native: TLS crypto, syscalls, event loop';
    else {
      for (let at = id; at !== undefined && !found; at = parent.get(at)) {
        const { url, functionName } = byId.get(at).callFrame;
        found = BUCKETS.find(([, pattern]) => pattern.test(url) || pattern.test(functionName))?.[0];
      }
      found ??= 'other JavaScript';
    }
    bucketOfNode.set(id, found);
    return found;
  };
  const totals = new Map();
  profile.samples.forEach((id, i) => {
    const bucket = bucketOf(id);
    if (bucket) totals.set(bucket, (totals.get(bucket) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return totals;
}

/** Sums the buckets of every profile in `dir`. */
export function bucketsOfDirectory(dir) {
  const totals = new Map();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    for (const [bucket, ms] of bucketsOfProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')))) {
      totals.set(bucket, (totals.get(bucket) ?? 0) + ms);
    }
  }
  return totals;
}
