// The process behind hostile-agent.ts: argv is the agent bundle directory and the reply
// (base64); prints its port, then answers every session with the reply and closes it.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';

const [bundle, replyBase64] = process.argv.slice(2) as [string, string];
const reply = Buffer.from(replyBase64, 'base64');
const server = tls.createServer(
  {
    cert: readFileSync(join(bundle, 'agent.crt')),
    key: readFileSync(join(bundle, 'agent.key')),
    ca: readFileSync(join(bundle, 'ca.crt')),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  },
  (socket) => {
    socket.on('error', () => {});
    // Once the client has sent its opening (VER ... CMD or PNG).
    socket.once('data', () => socket.end(reply));
  },
);
server.on('tlsClientError', () => {});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
