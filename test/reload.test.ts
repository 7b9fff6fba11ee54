// SIGHUP: new token, policy and agent certificate take effect for new sessions only.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { cleanupAll, distrun, makePki, spawnDistrun, startAgent, tempDir, waitFor, writeAgentConfig } from './helpers/fleet.js';

test.after.always(cleanupAll);

function agentSerial(port: number, pkiDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host: '127.0.0.1',
        port,
        ca: readFileSync(join(pkiDir, 'ca.crt')),
        cert: readFileSync(join(pkiDir, 'client.crt')),
        key: readFileSync(join(pkiDir, 'client.key')),
      },
      () => {
        resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
        socket.destroy();
      },
    );
    socket.on('error', reject);
  });
}

test('token, policy and certificate rotation apply after SIGHUP; a running session survives', async (t) => {
  const pki = await makePki(['agent1']);
  const dir = tempDir();
  const token = join(dir, 'token');
  writeFileSync(token, 'first-token', { mode: 0o600 });
  const agent = await startAgent(pki, 'agent1', { config: { tokenFile: token } });
  const at = ['-H', `127.0.0.1:${agent.port}`, '--pki', pki.dir];
  const clientToken = join(dir, 'client-token');
  writeFileSync(clientToken, 'first-token');
  t.is((await distrun([...at, '--token-file', clientToken, 'true'])).code, 0);
  const serialBefore = await agentSerial(agent.port, pki.dir);
  const running = spawnDistrun([...at, '--token-file', clientToken, 'sh', '-c', 'sleep 1.5; echo done']);
  t.true(await waitFor(() => agent.logs.some((l) => l.msg === 'command' && JSON.stringify(l.argv).includes('sleep 1.5'))));

  // New token, a policy that only allows echo, and a renewed agent certificate.
  writeFileSync(token, 'second-token', { mode: 0o600 });
  writeAgentConfig(pki, 'agent1', { tokenFile: token, policy: [{ clients: ['admin'], commands: ['echo'] }] }, agent.configFile);
  t.is((await distrun(['certs', 'renew', 'agent1', '--dir', pki.dir])).code, 0);
  t.is((await agent.reload()).msg, 'reloaded');

  const old = await distrun([...at, '--token-file', clientToken, 'echo', 'x']);
  t.regex(old.stderr, /authentication token rejected/);
  writeFileSync(clientToken, 'second-token');
  const denied = await distrun([...at, '--token-file', clientToken, 'true']);
  t.regex(denied.stderr, /command "true" is not allowed/);
  const allowed = await distrun([...at, '--token-file', clientToken, 'echo', 'y']);
  t.is(allowed.stdout.toString(), '127.0.0.1: y\n', allowed.stderr);
  t.not(await agentSerial(agent.port, pki.dir), serialBefore, 'new handshakes use the renewed certificate');
  t.is(await running.exit, 0, 'the session that was running when the agent reloaded finished normally');
});
