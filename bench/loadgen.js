#!/usr/bin/env node
// nowgate broadcast benchmark: the load generator (one process, pinned to its own core).
//
// Opens N subscribers and one publisher against one server, then measures, on that one
// connection set:
//   setup      time to open N connections (handshake + now.hello/welcome, or socket.io connect)
//   rss        the server's VmRSS before and after the N idle connections
//   closed     a closed loop of `inflight` syncPosition calls: a call leaves the window when
//              the publisher has its answer AND every subscriber has received the
//              updatePosition it caused (or after `timeout` s, to keep the loop going)
//   fixed      an open loop at `rate` calls/s (latency at a load the server can carry)
//   slow       optional: the closed loop again with one extra subscriber that never reads
// Lost deliveries are counted per phase once the server has gone quiet after it: for every
// call of the phase, the subscribers (present at the start) that never received it.
// Latency is call -> receipt: the publisher's send time (a side table keyed by sequence
// number) to each subscriber's receipt, in this same process. The sequence number travels in
// the position: left = seq % 10000, top = floor(seq / 10000).
//
// Every loop is bounded in time (phase durations, `--max-s` overall) and in count.
'use strict';

const { performance } = require('node:perf_hooks');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { io } = require('socket.io-client');

// ---------------------------------------------------------------------------- options
const DEFAULTS = {
  proto: 'jsonrpc', // jsonrpc (nowgate, bare FastAPI) | socketio (python-socketio, socket.io)
  url: '', // ws://127.0.0.1:P/ws, or http://127.0.0.1:P for socket.io
  origin: '', // Origin header sent by JSON-RPC clients (nowgate checks it)
  n: 100, // subscribers
  pid: 0, // server pid, for VmRSS and CPU time
  concurrency: 64, // handshakes in flight while opening the N subscribers
  inflight: 32, // closed-loop window
  warmup: 1, // s
  windows: 3, // closed-loop measurement windows (median reported)
  window: 5, // s each
  rate: 0, // fixed-rate calls/s (0: skip)
  rateS: 6, // s
  slow: 0, // 1: run the slow-consumer phase
  slowFill: 5, // s of closed loop with the stalled reader before the measured window
  slowWindow: 6, // s
  slowPython: '', // python used to run slow_consumer.py
  timeout: 10, // s after which a call leaves the closed-loop window even if not fully received
  settle: 1.5, // s to wait before reading the idle RSS
  maxS: 240, // hard deadline for the whole run
};

function parseArgs(argv) {
  const opts = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${argv[i]}`);
    const value = argv[i + 1];
    opts[key] = typeof DEFAULTS[key] === 'number' ? Number(value) : value;
  }
  if (!opts.url) throw new Error('--url is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const log = (...a) => process.stderr.write(`[loadgen] ${a.join(' ')}\n`);
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
setTimeout(() => {
  log(`hard deadline of ${opts.maxS} s reached: exiting`);
  process.exit(3);
}, opts.maxS * 1000).unref();

// ---------------------------------------------------------------------------- /proc
function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

function cpuTicks(pid) {
  // utime + stime of the process (fields 14 and 15), in clock ticks (USER_HZ = 100).
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function cpuMeter(pid) {
  const t0 = now();
  const s0 = pid ? cpuTicks(pid) : 0;
  const c0 = process.cpuUsage();
  return () => {
    const wall = (now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    return {
      server_cpu: pid ? (cpuTicks(pid) - s0) / 100 / wall : null,
      client_cpu: (c.user + c.system) / 1e6 / wall,
    };
  };
}

// ---------------------------------------------------------------------------- clients
// Both kinds: connect() -> Promise, call(position, done(ok)), onUpdate(position), close().
class JsonRpcClient {
  constructor(onUpdate) {
    this.onUpdate = onUpdate;
    this.pending = new Map();
    this.nextId = 1;
    this.closed = false;
    this.closeCode = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const headers = opts.origin ? { origin: opts.origin } : {};
      const ws = new WebSocket(opts.url, { perMessageDeflate: false, skipUTF8Validation: true, headers });
      this.ws = ws;
      ws.on('open', () => {
        this.pending.set(1, (msg) => (msg.result ? resolve() : reject(new Error('hello refused'))));
        this.nextId = 2;
        ws.send('{"jsonrpc":"2.0","id":1,"method":"now.hello","params":{"protocol":1,"token":null}}');
      });
      ws.on('message', (data) => this._message(data));
      ws.on('error', (e) => reject(e));
      ws.on('close', (code) => {
        this.closed = true;
        this.closeCode = code;
        reject(new Error(`closed ${code}`));
      });
    });
  }

  _message(data) {
    // The broadcasts are most of the load generator's work: read the position with a scan
    // instead of JSON.parse (the frame is checked to be an updatePosition notification).
    const text = data.toString('latin1');
    if (text.includes('"method":"updatePosition"') && !text.includes('"id"')) {
      const left = text.indexOf('"left":');
      const top = text.indexOf('"top":');
      if (left !== -1 && top !== -1) {
        this.onUpdate({ left: parseFloat(text.slice(left + 7)), top: parseFloat(text.slice(top + 6)) });
        return;
      }
    }
    const msg = JSON.parse(data);
    if (msg.method === 'updatePosition') {
      this.onUpdate(msg.params[0]);
    } else if (msg.id !== undefined) {
      const done = this.pending.get(msg.id);
      if (done) {
        this.pending.delete(msg.id);
        done(msg);
      }
    }
  }

  call(position, done) {
    const id = this.nextId++;
    this.pending.set(id, (msg) => done(msg.result === true));
    this.ws.send(
      `{"jsonrpc":"2.0","id":${id},"method":"syncPosition","params":[{"left":${position.left},"top":${position.top}}]}`,
    );
  }

  close() {
    this.ws.terminate();
  }
}

class SocketIoClient {
  constructor(onUpdate) {
    this.onUpdate = onUpdate;
    this.closed = false;
    this.closeCode = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = io(opts.url, {
        transports: ['websocket'],
        forceNew: true,
        reconnection: false,
        perMessageDeflate: false,
        timeout: 20000,
      });
      this.socket = socket;
      socket.on('connect', resolve);
      socket.on('connect_error', reject);
      socket.on('disconnect', (reason) => {
        this.closed = true;
        this.closeCode = reason;
      });
      socket.on('updatePosition', (position) => this.onUpdate(position));
    });
  }

  call(position, done) {
    this.socket.emit('syncPosition', position, (ok) => done(ok === true));
  }

  close() {
    this.socket.disconnect();
  }
}

const Client = opts.proto === 'socketio' ? SocketIoClient : JsonRpcClient;

// ---------------------------------------------------------------------------- accounting
const CAP = 1 << 20; // ring of per-call slots, indexed by seq & (CAP - 1)
const MAX_SEQ = 10000 * 10000;
const sendAt = new Float64Array(CAP);
const receipts = new Int32Array(CAP);
const answered = new Uint8Array(CAP);
const open = new Uint8Array(CAP); // 1 while the call is in the window
const openSeqs = new Set();
let nextSeq = 0;
let expected = 0; // subscribers each call must reach

class Samples {
  constructor() {
    this.a = new Float64Array(1 << 16);
    this.n = 0;
  }
  push(v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  summary() {
    const s = this.a.slice(0, this.n).sort();
    const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
    return { count: s.length, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: s.length ? s[s.length - 1] : null };
  }
}

const stats = {
  samples: new Samples(),
  deliveries: 0,
  calls: 0,
  timedOut: 0,
  late: 0,
  failedCalls: 0,
  reset() {
    this.samples = new Samples();
    this.deliveries = 0;
    this.calls = 0;
    this.timedOut = 0;
    this.late = 0;
    this.failedCalls = 0;
  },
};

let onComplete = () => {}; // the closed loop refills the window here
let lastUpdateAt = 0;

function onUpdate(position) {
  const t = now();
  lastUpdateAt = t;
  const seq = position.top * 10000 + position.left;
  const i = seq & (CAP - 1);
  stats.samples.push(t - sendAt[i]);
  stats.deliveries += 1;
  receipts[i] += 1;
  if (!open[i]) {
    stats.late += 1; // after its call left the window on the timeout
    return;
  }
  if (receipts[i] >= expected && answered[i]) complete(seq);
}

function complete(seq) {
  const i = seq & (CAP - 1);
  open[i] = 0;
  openSeqs.delete(seq);
  stats.calls += 1;
  onComplete();
}

function send(publisher) {
  const seq = nextSeq;
  nextSeq = (nextSeq + 1) % MAX_SEQ;
  const i = seq & (CAP - 1);
  sendAt[i] = now();
  receipts[i] = 0;
  answered[i] = 0;
  open[i] = 1;
  openSeqs.add(seq);
  publisher.call({ left: seq % 10000, top: Math.floor(seq / 10000) }, (ok) => {
    if (!open[i]) return;
    if (!ok) stats.failedCalls += 1;
    answered[i] = 1;
    if (receipts[i] >= expected) complete(seq);
  });
}

function sweep() {
  // Calls older than the timeout leave the window (their receipts may still come).
  const limit = now() - opts.timeout * 1000;
  for (const seq of openSeqs) {
    const i = seq & (CAP - 1);
    if (sendAt[i] < limit) {
      stats.timedOut += 1;
      open[i] = 0;
      openSeqs.delete(seq);
      onComplete();
    }
  }
}

function lostSince(firstSeq) {
  // Receipts missing for the calls sent since firstSeq (call after quiesce()).
  let lost = 0;
  for (let seq = firstSeq; seq !== nextSeq; seq = (seq + 1) % MAX_SEQ) {
    lost += Math.max(0, expected - receipts[seq & (CAP - 1)]);
  }
  return lost;
}

async function quiesce() {
  // After a phase that overloaded the server, wait for its backlog to stop arriving (20 s at
  // most), so that the next phase starts from an idle server. Returns the seconds waited.
  const t0 = now();
  while (now() - lastUpdateAt < 500 && now() - t0 < 20000) await sleep(100);
  return (now() - t0) / 1000;
}

async function drain() {
  const deadline = now() + opts.timeout * 1000 + 500;
  while (openSeqs.size && now() < deadline) await sleep(20);
  sweep();
}

// ---------------------------------------------------------------------------- phases
async function openSubscribers(n) {
  const subs = [];
  const times = new Samples();
  let failures = 0;
  let index = 0;
  const t0 = now();
  async function worker() {
    while (index < n) {
      index += 1;
      const client = new Client(onUpdate);
      const started = now();
      try {
        await client.connect();
        times.push(now() - started);
        subs.push(client);
      } catch (e) {
        failures += 1;
        if (failures <= 3) log(`connect failed: ${e.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, n) }, worker));
  const total = (now() - t0) / 1000;
  const t = times.summary();
  return {
    subs,
    setup: {
      total_s: total,
      conn_per_s: subs.length / total,
      handshake_p50_ms: t.p50_ms,
      handshake_p99_ms: t.p99_ms,
      failures,
    },
  };
}

function windowResult(seconds, meter) {
  const cpu = meter();
  return {
    seconds,
    deliveries_per_s: stats.deliveries / seconds,
    calls_per_s: stats.calls / seconds,
    ...stats.samples.summary(),
    timed_out: stats.timedOut,
    late: stats.late,
    failed_calls: stats.failedCalls,
    ...cpu,
  };
}

async function closedLoop(publisher, seconds, windows, warmup = opts.warmup) {
  let running = true;
  onComplete = () => {
    if (running && openSeqs.size < opts.inflight) send(publisher);
  };
  const sweeper = setInterval(sweep, 100);
  for (let k = 0; k < opts.inflight; k++) send(publisher);
  await sleep(warmup * 1000);
  const results = [];
  for (let w = 0; w < windows; w++) {
    stats.reset();
    const meter = cpuMeter(opts.pid);
    const t0 = now();
    await sleep(seconds * 1000);
    results.push(windowResult((now() - t0) / 1000, meter));
  }
  running = false;
  await drain();
  clearInterval(sweeper);
  onComplete = () => {};
  return results;
}

async function fixedRate(publisher, rate, seconds) {
  stats.reset();
  const sweeper = setInterval(sweep, 100);
  const meter = cpuMeter(opts.pid);
  const t0 = now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((now() - t0) / 1000) * rate) + 1);
      while (sent < due) {
        send(publisher);
        sent += 1;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const wall = (now() - t0) / 1000;
  await drain();
  clearInterval(sweeper);
  return { rate, sent, expected_deliveries: sent * expected, ...windowResult(wall, meter) };
}

function slowConsumer() {
  // One extra subscriber that completes its handshake, then never reads (tiny SO_RCVBUF).
  const script = path.join(__dirname, 'slow_consumer.py');
  const child = spawn(opts.slowPython || 'python3', [script, '--proto', opts.proto, '--url', opts.url,
    '--origin', opts.origin, '--seconds', String(opts.slowFill + opts.slowWindow + opts.timeout + 5)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`slow consumer exited ${code}`)));
  });
  const finished = new Promise((resolve) => child.on('exit', () => resolve(out)));
  return { child, ready, finished };
}

// ---------------------------------------------------------------------------- main
async function main() {
  const result = { proto: opts.proto, n: opts.n, inflight: opts.inflight, publisher_closed: [] };
  let publisher = new Client(() => {});
  await publisher.connect();
  // A publisher the server closed (nowgate closes one with more than 64 calls queued, 1013)
  // is noted and replaced before the next phase.
  const ensurePublisher = async () => {
    if (!publisher.closed) return;
    log(`the publisher was closed: ${publisher.closeCode}; reconnecting`);
    result.publisher_closed.push(String(publisher.closeCode));
    publisher = new Client(() => {});
    await publisher.connect();
  };
  await sleep(200);
  const rssBefore = opts.pid ? rssKiB(opts.pid) : null;
  const { subs, setup } = await openSubscribers(opts.n);
  result.setup = setup;
  expected = subs.length;
  const idleMeter = cpuMeter(opts.pid);
  await sleep(opts.settle * 1000);
  result.idle_server_cpu = idleMeter().server_cpu; // CPU the N idle connections cost
  if (opts.pid) {
    const after = rssKiB(opts.pid);
    result.rss = { before_kib: rssBefore, after_kib: after, per_conn_kib: (after - rssBefore) / subs.length };
  }
  log(`n=${opts.n}: ${subs.length} subscribers in ${setup.total_s.toFixed(2)} s`
    + (result.rss ? `, ${result.rss.per_conn_kib.toFixed(1)} KiB/conn` : ''));

  if (opts.windows > 0) {
    log('closed loop started');
    const firstSeq = nextSeq;
    const windows = await closedLoop(publisher, opts.window, opts.windows);
    const quiesceS = await quiesce();
    const median = (key) => {
      const v = windows.map((w) => w[key]).sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)];
    };
    result.closed = {
      deliveries_per_s: median('deliveries_per_s'),
      calls_per_s: median('calls_per_s'),
      p50_ms: median('p50_ms'),
      p99_ms: median('p99_ms'),
      max_ms: Math.max(...windows.map((w) => w.max_ms || 0)),
      lost: lostSince(firstSeq),
      quiesce_s: quiesceS,
      server_cpu: median('server_cpu'),
      client_cpu: median('client_cpu'),
      windows,
    };
    log(`closed loop: ${result.closed.deliveries_per_s.toFixed(0)} deliveries/s, `
      + `p99 ${result.closed.p99_ms?.toFixed(1)} ms, lost ${result.closed.lost}`);
  }
  if (opts.rate > 0) {
    await ensurePublisher();
    const firstSeq = nextSeq;
    result.fixed = await fixedRate(publisher, opts.rate, opts.rateS);
    result.fixed.quiesce_s = await quiesce();
    result.fixed.lost = lostSince(firstSeq);
    log(`fixed ${opts.rate}/s: p50 ${result.fixed.p50_ms?.toFixed(2)} ms, `
      + `p99 ${result.fixed.p99_ms?.toFixed(2)} ms, lost ${result.fixed.lost}`);
  }

  if (opts.slow) {
    await ensurePublisher();
    const slow = slowConsumer();
    await slow.ready;
    const firstSeq = nextSeq;
    const [w] = await closedLoop(publisher, opts.slowWindow, 1, opts.slowFill);
    w.quiesce_s = await quiesce();
    w.lost = lostSince(firstSeq);
    slow.child.kill('SIGTERM');
    const report = await slow.finished;
    const line = report.split('\n').find((l) => l.startsWith('{'));
    result.slow = {
      ...w,
      ratio_to_closed: result.closed ? w.deliveries_per_s / result.closed.deliveries_per_s : null,
      consumer: line ? JSON.parse(line) : null,
    };
    log(`slow consumer: ${w.deliveries_per_s.toFixed(0)} deliveries/s `
      + `(${(100 * result.slow.ratio_to_closed).toFixed(0)}% of the closed loop), p99 ${w.p99_ms?.toFixed(1)} ms, `
      + `stalled reader: ${JSON.stringify(result.slow.consumer)}`);
  }

  result.subscribers_closed = subs.filter((s) => s.closed).length;
  if (publisher.closed) result.publisher_closed.push(String(publisher.closeCode));
  for (const s of subs) s.close();
  publisher.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  setTimeout(() => process.exit(0), 200);
}

main().catch((e) => {
  log(`failed: ${e.stack || e}`);
  process.exit(1);
});
