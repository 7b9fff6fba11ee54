// The renderers driven in memory with recorded events: one subscription per host through
// RendererSet, one end-of-host event, and backpressure as counted holds. No agent, no sockets.
import test from 'ava';
import { Writable } from 'node:stream';
import { GatherRenderer } from '../src/cli/output/gather.js';
import { JsonRenderer } from '../src/cli/output/json.js';
import { LineRenderer } from '../src/cli/output/line.js';
import { RendererSet, type RenderedHost, type Renderer } from '../src/cli/output/renderers.js';
import type { HostResult } from '../src/cli/execution/outcome.js';
import { FakeSession, result, target } from './helpers/fake-session.js';

/** A stream that keeps what it is given; with `highWaterMark: 1` every write reports it is full until drained. */
class Recorder extends Writable {
  readonly chunks: Buffer[] = [];
  private pending: Array<() => void> = [];
  constructor(private readonly slow = false) {
    super({ highWaterMark: 1 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    if (this.slow) this.pending.push(done);
    else done();
  }
  /** Lets the writes through: the stream drains. */
  flushWrites(): void {
    const pending = this.pending;
    this.pending = [];
    for (const done of pending) done();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

const streams = () => ({ stdout: new Recorder(), stderr: new Recorder() });

/** A sink that holds the host on every chunk until the test releases it. */
class HoldingSink implements Renderer {
  readonly releases: Array<() => void> = [];
  output(host: RenderedHost): void {
    this.releases.push(host.hold());
  }
  hostDone(): void {}
  finish(): void {}
}

test('two slow sinks both hold a host: it resumes only when both have drained', (t) => {
  const a = new HoldingSink();
  const b = new HoldingSink();
  const set = new RendererSet([a, b]);
  const session = new FakeSession(target('web1'));
  set.hostStarted(session);
  session.emit('stdout', Buffer.from('x\n'));
  t.true(session.paused);
  t.is(session.pauses, 1, 'paused once, however many sinks hold');
  a.releases[0]!();
  t.true(session.paused, 'the first sink to drain does not resume the host while the other is full');
  a.releases[0]!();
  t.true(session.paused, 'a release counts once');
  b.releases[0]!();
  t.false(session.paused);
});

test('each renderer hears a host start, its output and its end once', (t) => {
  const events: string[] = [];
  const recording: Renderer = {
    hostStarted: (host) => events.push(`start ${host.target.name}`),
    output: (host, stream, chunk) => events.push(`${stream} ${host.target.name} ${chunk.toString()}`),
    outputHeld: (host, leader) => events.push(`held ${host.target.name} ${leader.code}`),
    hostDone: (r: HostResult) => events.push(`done ${r.target.name}`),
    finish: (results, exitCode) => events.push(`finish ${results.length} ${exitCode}`),
  };
  const set = new RendererSet([recording]);
  const session = new FakeSession(target('web1'));
  set.hostStarted(session);
  session.emit('stdout', Buffer.from('a'));
  session.emit('stderr', Buffer.from('b'));
  session.emit('output-held', { code: 0 });
  session.emit('output-held', { code: 0 });
  const r = session.end();
  set.hostDone(r);
  set.finish([r], 0);
  t.deepEqual(events, ['start web1', 'stdout web1 a', 'stderr web1 b', 'held web1 0', 'done web1', 'finish 1 0']);
});

test('LineRenderer: whole lines under the host prefix; a last line without newline is ended at the host end', (t) => {
  const io = streams();
  const set = new RendererSet([new LineRenderer(io, { prefix: true, hostCount: 2, neutralize: true })]);
  const [one, two] = [new FakeSession(target('web1')), new FakeSession(target('web2'))];
  set.hostStarted(one);
  set.hostStarted(two);
  one.emit('stdout', Buffer.from('hel'));
  two.emit('stdout', Buffer.from('other\n'));
  one.emit('stdout', Buffer.from('lo\nrest'));
  two.emit('stderr', Buffer.from('oops\n'));
  set.hostDone(one.end());
  set.hostDone(two.end({ kind: 'exit', code: 1, timedOut: false }));
  t.is(io.stdout.text, 'web2: other\nweb1: hello\nweb1: rest\n');
  t.is(io.stderr.text, 'web2: oops\n');
});

test('LineRenderer: a host that could not run is reported on stderr when it ends', (t) => {
  const io = streams();
  const set = new RendererSet([new LineRenderer(io, { prefix: true, hostCount: 1, neutralize: true })]);
  set.hostDone(result(target('db1'), { kind: 'error', code: 'E_CONNECT', message: 'connection refused' }));
  t.is(io.stderr.text, 'distrun: db1:6790: connection refused\n');
});

test('LineRenderer holds the host while its stream is full and releases it on drain', async (t) => {
  const io = { stdout: new Recorder(true), stderr: new Recorder() };
  const set = new RendererSet([new LineRenderer(io, { prefix: true, hostCount: 2, neutralize: true })]);
  const session = new FakeSession(target('web1'));
  set.hostStarted(session);
  session.emit('stdout', Buffer.from('a\n'));
  t.true(session.paused);
  io.stdout.flushWrites();
  await new Promise((resolve) => setImmediate(resolve));
  t.false(session.paused);
});

test('JsonRenderer: start, output, held and the end of each host as JSON Lines', (t) => {
  const io = streams();
  const set = new RendererSet([new JsonRenderer(io)]);
  const session = new FakeSession(target('web1'));
  set.hostStarted(session);
  session.emit('stdout', Buffer.from('hi\n'));
  session.emit('stderr', Buffer.from([0xff]));
  session.emit('output-held', { code: 0 });
  const r = session.end();
  set.hostDone(r);
  set.finish([r], 0);
  const events = io.stdout.text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.deepEqual(
    events.map((e) => e.type),
    ['start', 'stdout', 'stderr', 'held', 'exit', 'summary'],
  );
  t.like(events[1], { host: 'web1', data: 'hi\n', encoding: 'utf8' });
  t.like(events[2], { data: '/w==', encoding: 'base64' });
  t.like(events[4], { host: 'web1', status: 'ok', exitCode: 0, code: 0 });
  t.like(events[5], { hosts: 1, ok: 1, exitCode: 0 });
});

test('GatherRenderer: identical outputs once under folded names, largest group first', (t) => {
  const io = streams();
  const set = new RendererSet([new GatherRenderer(io, { neutralize: false })]);
  const results = ['web1', 'web2', 'db1'].map((name) => {
    const session = new FakeSession(target(name));
    set.hostStarted(session);
    session.emit('stdout', Buffer.from(name.startsWith('web') ? 'same\n' : 'other'));
    const r = session.end();
    set.hostDone(r);
    return r;
  });
  set.finish(results, 0);
  const rule = '-'.repeat(15);
  t.is(io.stdout.text, `${rule}\nweb[1-2] (2)\n${rule}\nsame\n${rule}\ndb1 (1)\n${rule}\nother\n`);
});

test('every write to the screen first calls beforeWrite (the progress line clears itself there)', (t) => {
  const io = streams();
  const log: string[] = [];
  const note = (which: 'stdout' | 'stderr') => (chunk: Buffer) => log.push(`${which} ${chunk.toString().trim()}`);
  const set = new RendererSet([new LineRenderer({ ...io, beforeWrite: () => log.push('clear') }, { prefix: true, hostCount: 2, neutralize: false })]);
  const origOut = io.stdout.write.bind(io.stdout);
  const origErr = io.stderr.write.bind(io.stderr);
  io.stdout.write = ((chunk: Buffer) => (note('stdout')(chunk), origOut(chunk))) as typeof io.stdout.write;
  io.stderr.write = ((chunk: Buffer) => (note('stderr')(chunk), origErr(chunk))) as typeof io.stderr.write;
  const session = new FakeSession(target('web1'));
  set.hostStarted(session);
  session.emit('stdout', Buffer.from('one\n'));
  const r = result(target('web1'), { kind: 'error', code: 'E_DISCONNECTED', message: 'connection reset' });
  set.hostDone(r);
  set.finish([r], 255);
  t.deepEqual(log.slice(0, 4), ['clear', 'stdout web1: one', 'clear', 'stderr distrun: web1:6790: connection reset']);
  t.is(log[4], 'clear', 'the summary too');
});

test('a host never started: reported with its reason, an error event with code E_SKIPPED, status skipped', (t) => {
  const io = streams();
  const set = new RendererSet([new JsonRenderer(io)]);
  const skipped = result(target('web9'), { kind: 'skipped', reason: 'not started: interrupted' });
  set.hostDone(skipped);
  set.finish([skipped], 130);
  const [event, summary] = io.stdout.text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  t.like(event, { type: 'error', host: 'web9', status: 'skipped', code: 'E_SKIPPED', message: 'not started: interrupted', exitCode: 0 });
  t.like(summary, { skipped: 1, exitCode: 130 });
  t.regex(io.stderr.text, /not started: interrupted: web9/, 'in the summary on stderr');
});
