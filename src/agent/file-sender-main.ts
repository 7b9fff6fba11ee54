// The file sender as a program: `node file-sender-main.js JOB`, started by the agent as
// the run-as user for a fetch session (command-admission.ts admitFetch). stdout is the
// file stream to the client; the exit status is 0 (every entry sent), 1 (some could not
// be sent) or 2 (the sender itself failed: the reason is on stderr).
import { FileSender, type SenderJob } from './file-sender.js';

const job = JSON.parse(process.argv[2] ?? '{}') as SenderJob;

// Backpressure: while stdout (the agent's pipe) is full, no more of the file is read.
const send = (frame: Buffer): Promise<void> | void => {
  if (process.stdout.write(frame)) return;
  return new Promise((resolve) => process.stdout.once('drain', resolve));
};

new FileSender(job, send).run().then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`distrun file sender: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
