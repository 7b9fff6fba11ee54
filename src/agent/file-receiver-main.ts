// The file receiver as a program: `node file-receiver-main.js JOB`, started by the agent
// as the run-as user for a copy session (copy-admission.ts). stdin is the client's file
// stream, stdout its answers; the exit status is 0 (every entry written or unchanged),
// 1 (some failed) or 2 (the stream broke the protocol: the reason is on stderr).
import { FileReceiver, type ReceiverJob } from './file-receiver.js';

const job = JSON.parse(process.argv[2] ?? '{}') as ReceiverJob;
const receiver = new FileReceiver(job, (frame) => process.stdout.write(frame));

// Stopped (time limit, lost client, agent shutdown): no temporary file stays behind.
for (const [signal, number] of [
  ['SIGTERM', 15],
  ['SIGINT', 2],
  ['SIGHUP', 1],
] as const) {
  process.on(signal, () => {
    receiver.abort();
    process.exit(128 + number);
  });
}

process.stdin.on('data', (chunk: Buffer) => {
  try {
    receiver.push(chunk);
  } catch (err) {
    receiver.abort();
    process.stderr.write(`distrun file receiver: ${(err as Error).message}\n`);
    process.exit(2);
  }
});
process.stdin.on('end', () => {
  const status = receiver.finish();
  // stdout is a pipe: written synchronously on Linux, so nothing is lost by exiting.
  process.exit(status);
});
