// Unit tests of the browser client's protocol core, without a socket: a fake transport,
// fake timers and a fixed random. Run with `node --test tests/js/`.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import * as NowModule from '../../src/nowgate/nowjs/now.mjs';
import { buildClassic } from '../../scripts/build-nowjs.mjs';

// The ES module is the source; the classic now.js is its build (checked below).
const { createClient, NowError, backoffDelay, memoryStorage } = NowModule;
const NowJS = createRequire(import.meta.url)('../../src/nowgate/nowjs/now.js');

function fakeTimers() {
  let now = 0, seq = 0;
  const due = new Map();
  return {
    setTimeout(fn, ms) { seq += 1; due.set(seq, { at: now + ms, fn, ms }); return seq; },
    clearTimeout(id) { due.delete(id); },
    delays() { return [...due.values()].map((t) => t.ms); },
    tick(ms) {
      const end = now + ms;
      for (;;) {
        const next = [...due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!next) break;
        due.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
  };
}

function harness(options = {}) {
  const sockets = [];
  const timers = fakeTimers();
  const storage = options.storage ?? memoryStorage();
  const transport = (url, h) => {
    const s = {
      url, h, sent: [], closedWith: null,
      send(text) { if (this.closedWith) throw new Error('closed'); this.sent.push(JSON.parse(text)); },
      close(code, reason) { this.closedWith = { code, reason }; },
      // server side helpers
      push(msg) { h.receive(typeof msg === 'string' ? msg : JSON.stringify(msg)); },
      drop(code = 1006, reason = '') { h.close(code, reason); },
      last() { return this.sent[this.sent.length - 1]; },
    };
    sockets.push(s);
    return s;
  };
  const now = createClient({ url: 'ws://test/ws', transport, timers, storage, random: () => 0.5, ...options });
  return { now, sockets, timers, storage, socket: () => sockets[sockets.length - 1] };
}

const WELCOME = {
  client_id: 'c-1', token: 'tok-1', resumed: false,
  functions: ['syncPosition', 'grab'], client_functions: ['updatePosition', 'constructor', 'toString', '__proto__', 'ask'],
  vars: { everyone: { position: { left: 1, top: 2 } }, groups: { red: { score: 3 } }, client: {} },
};

// Opens the current socket, answers its hello with a welcome, returns the socket.
function welcome(h, extra = {}) {
  const s = h.socket();
  s.h.open();
  const hello = s.last();
  s.push({ jsonrpc: '2.0', id: hello.id, result: { ...WELCOME, ...extra } });
  return s;
}
const tick = () => new Promise((r) => setImmediate(r));

describe('session start', () => {
  test('hello is the first frame and carries protocol 1 and a null token', () => {
    const h = harness();
    assert.equal(h.sockets.length, 1);
    assert.equal(h.socket().url, 'ws://test/ws');
    assert.deepEqual(h.socket().sent, []);
    h.socket().h.open();
    assert.deepEqual(h.socket().sent, [
      { jsonrpc: '2.0', id: 1, method: 'now.hello', params: { protocol: 1, token: null } },
    ]);
  });

  test('hello carries the auth option, a string or a function', () => {
    let h = harness({ auth: 'session-abc' });
    h.socket().h.open();
    assert.equal(h.socket().last().params.auth, 'session-abc');
    h = harness({ auth: () => 'fresh' });
    h.socket().h.open();
    assert.equal(h.socket().last().params.auth, 'fresh');
  });

  test('welcome defines server functions, stores the token, resolves ready and emits connect', async () => {
    const h = harness();
    const events = [];
    h.now.on('connect', (i) => events.push(i));
    const ready = h.now.ready();
    assert.equal(typeof h.now.syncPosition, 'undefined');
    welcome(h);
    const info = await ready;
    assert.equal(info.clientId, 'c-1');
    assert.equal(info.resumed, false);
    assert.equal(h.now.clientId, 'c-1');
    assert.equal(h.now.state, 'open');
    assert.equal(typeof h.now.syncPosition, 'function');
    assert.equal(typeof h.now.grab, 'function');
    assert.equal(h.storage.getItem('nowgate.token:ws://test/ws'), 'tok-1');
    assert.equal(events.length, 1);
    assert.equal((await h.now.ready()).clientId, 'c-1', 'ready() resolves at once while connected');
  });

  test('server-function stubs cannot be overwritten and do not shadow the API', () => {
    const h = harness();
    welcome(h, { functions: ['syncPosition', 'on', 'toString'] });
    assert.throws(() => { h.now.syncPosition = () => 1; }, TypeError);
    assert.equal(typeof h.now.on, 'function');
    assert.equal(Object.hasOwn(h.now, 'on'), false);
    assert.equal(Object.hasOwn(h.now, 'toString'), false);
    assert.throws(() => { h.now.on = () => 1; }, TypeError, 'the API is frozen');
  });

  test('a refused hello stops the client: no reconnect, ready rejects with the server error', async () => {
    const h = harness();
    h.now.on('error', () => {});
    const ready = h.now.ready();
    const s = h.socket();
    s.h.open();
    s.push({ jsonrpc: '2.0', id: s.last().id, error: { code: -32003, message: 'Forbidden' } });
    assert.equal(s.closedWith.code, 1000);
    s.drop(1008, 'hello refused');
    await assert.rejects(ready, (e) => e instanceof NowError && e.code === -32003);
    assert.equal(h.now.state, 'closed');
    assert.deepEqual(h.timers.delays(), []);
    h.timers.tick(60000);
    assert.equal(h.sockets.length, 1, 'never reconnects on its own');
    await assert.rejects(h.now.call('grab'), (e) => e.code === -32003);
    h.now.connect();
    assert.equal(h.sockets.length, 2, 'connect() starts again');
  });

  test('an invalid welcome closes and retries after the cap', () => {
    const h = harness();
    h.now.on('error', (e) => assert.equal(e.code, 'invalid_welcome'));
    const s = h.socket();
    s.h.open();
    s.push({ jsonrpc: '2.0', id: s.last().id, result: { nope: true } });
    assert.equal(s.closedWith.code, 1000);
    s.drop(1000);
    assert.deepEqual(h.timers.delays(), [10000]);
  });

  test('messages other than the welcome answer are ignored before the welcome', () => {
    const h = harness();
    h.now.updatePosition = () => { throw new Error('must not run'); };
    const s = h.socket();
    s.h.open();
    s.push({ jsonrpc: '2.0', method: 'updatePosition', params: [{ left: 1, top: 1 }] });
    s.push({ jsonrpc: '2.0', id: 99, result: 1 });
    assert.equal(s.sent.length, 1);
    assert.equal(h.now.state, 'connecting');
  });
});

describe('client to server calls', () => {
  test('a call is framed as a JSON-RPC request with positional params and resolves with the result', async () => {
    const h = harness();
    const s = welcome(h);
    const p = h.now.syncPosition({ left: 10, top: 20 });
    assert.deepEqual(s.last(), { jsonrpc: '2.0', id: 2, method: 'syncPosition', params: [{ left: 10, top: 20 }] });
    s.push({ jsonrpc: '2.0', id: 2, result: true });
    assert.equal(await p, true);
    const q = h.now.call('grab');
    assert.deepEqual(s.last(), { jsonrpc: '2.0', id: 3, method: 'grab', params: [] });
    s.push({ jsonrpc: '2.0', id: 3, result: null });
    assert.equal(await q, null);
  });

  test('notify sends a notification without id', () => {
    const h = harness();
    const s = welcome(h);
    assert.equal(h.now.notify('syncPosition', { left: 1, top: 2 }), true);
    assert.deepEqual(s.last(), { jsonrpc: '2.0', method: 'syncPosition', params: [{ left: 1, top: 2 }] });
  });

  test('setVar calls now.set with named params', () => {
    const h = harness();
    const s = welcome(h);
    h.now.setVar('client', 'nick', 'ann');
    assert.deepEqual(s.last().params, { scope: 'client', path: 'nick', value: 'ann' });
    assert.equal(s.last().method, 'now.set');
  });

  test('server errors become NowError with code, message and data', async () => {
    const h = harness();
    const s = welcome(h);
    const cases = [
      [-32601, 'Method not found', undefined],
      [-32602, 'Invalid params', [{ loc: [0, 'left'], msg: 'too big', type: 'less_than_equal' }]],
      [-32603, 'Internal error', undefined],
      [-32003, 'Forbidden', undefined],
      [-32029, 'Rate limited', { retry_after: 1.5 }],
    ];
    for (const [code, message, data] of cases) {
      const p = h.now.syncPosition({ left: 1, top: 1 });
      s.push({ jsonrpc: '2.0', id: s.last().id, error: data === undefined ? { code, message } : { code, message, data } });
      await assert.rejects(p, (e) => {
        assert.ok(e instanceof NowError);
        assert.ok(e instanceof Error);
        assert.equal(e.code, code);
        assert.equal(e.message, message);
        assert.deepEqual(e.data, data);
        return true;
      });
    }
  });

  test('answers with unknown ids, odd ids and malformed frames are ignored', async () => {
    const h = harness();
    const s = welcome(h);
    const p = h.now.call('grab');
    for (const junk of ['not json', '[1,2]', '{"jsonrpc":"1.0","id":2,"result":1}', '{"jsonrpc":"2.0","id":"2","result":1}',
      '{"jsonrpc":"2.0","id":77,"result":1}', '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}']) {
      s.push(junk);
    }
    s.push({ jsonrpc: '2.0', id: 2, result: 'ok' });
    assert.equal(await p, 'ok');
  });

  test('pending calls reject with "disconnected" when the connection drops and are not re-sent', async () => {
    const h = harness();
    const s = welcome(h);
    const p = h.now.syncPosition({ left: 1, top: 1 });
    s.drop(1006);
    await assert.rejects(p, (e) => e instanceof NowError && e.code === 'disconnected');
    h.timers.tick(10000);
    const s2 = welcome(h);
    assert.equal(s2.sent.filter((m) => m.method === 'syncPosition').length, 0);
  });

  test('calls time out after callTimeout', async () => {
    const h = harness({ callTimeout: 1000 });
    welcome(h);
    const p = h.now.call('grab');
    h.timers.tick(1000);
    await assert.rejects(p, (e) => e.code === 'timeout');
  });
});

describe('calls while disconnected', () => {
  test('calls before the welcome are queued and flushed in order after it', async () => {
    const h = harness();
    const a = h.now.call('grab');
    const b = h.now.call('syncPosition', { left: 5, top: 6 });
    h.now.notify('syncPosition', { left: 7, top: 8 });
    const s = h.socket();
    s.h.open();
    assert.equal(s.sent.length, 1, 'only the hello before the welcome');
    s.push({ jsonrpc: '2.0', id: s.last().id, result: WELCOME });
    assert.deepEqual(s.sent.slice(1).map((m) => [m.method, m.params]), [
      ['grab', []], ['syncPosition', [{ left: 5, top: 6 }]], ['syncPosition', [{ left: 7, top: 8 }]],
    ]);
    s.push({ jsonrpc: '2.0', id: s.sent[1].id, result: { granted: true } });
    s.push({ jsonrpc: '2.0', id: s.sent[2].id, result: true });
    assert.deepEqual(await a, { granted: true });
    assert.equal(await b, true);
  });

  test('the queue is bounded: the call past the limit rejects with "queue_full"', async () => {
    const h = harness({ queueLimit: 3 });
    const ok = [h.now.call('a'), h.now.call('b'), h.now.call('c')];
    await assert.rejects(h.now.call('d'), (e) => e instanceof NowError && e.code === 'queue_full');
    assert.equal(h.now.notify('e'), false);
    const s = welcome(h);
    assert.deepEqual(s.sent.slice(1).map((m) => m.method), ['a', 'b', 'c']);
    ok.forEach(() => {});
  });

  test('calls made during a reconnect wait for the next welcome', async () => {
    const h = harness();
    welcome(h).drop(1001, 'server shutdown');
    const p = h.now.syncPosition({ left: 3, top: 4 });
    h.timers.tick(10000);
    const s2 = welcome(h);
    const sent = s2.sent.find((m) => m.method === 'syncPosition');
    assert.ok(sent);
    s2.push({ jsonrpc: '2.0', id: sent.id, result: true });
    assert.equal(await p, true);
  });

  test('a queued call that times out is removed from the queue', async () => {
    const h = harness({ callTimeout: 500 });
    const p = h.now.call('grab');
    h.timers.tick(500);
    await assert.rejects(p, (e) => e.code === 'timeout');
    const s = welcome(h);
    assert.equal(s.sent.length, 1);
  });

  test('close() rejects queued calls with "closed" and stops', async () => {
    const h = harness();
    const p = h.now.call('grab');
    h.now.close();
    await assert.rejects(p, (e) => e.code === 'closed');
    assert.equal(h.now.state, 'closed');
    assert.equal(h.socket().closedWith.code, 1000);
    h.timers.tick(60000);
    assert.equal(h.sockets.length, 1);
  });
});

describe('reconnection', () => {
  test('backoffDelay is full jitter on an exponential ceiling with a cap', () => {
    const ceil = (n) => backoffDelay(n, () => 0.999999, 250, 10000);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(ceil), [249, 499, 999, 1999, 3999, 7999, 9999, 9999]);
    assert.equal(backoffDelay(3, () => 0, 250, 10000), 0);
    assert.equal(backoffDelay(2000, () => 0.5, 250, 10000), 5000, 'no overflow past the cap');
    for (let n = 0; n < 12; n += 1) {
      for (const r of [0, 0.1, 0.5, 0.9, 0.9999]) {
        const d = backoffDelay(n, () => r, 250, 10000);
        assert.ok(d >= 0 && d <= Math.min(10000, 250 * 2 ** n), `attempt ${n}, random ${r}: ${d}`);
      }
    }
  });

  test('failed attempts back off exponentially with jitter up to the cap, and a welcome resets it', () => {
    const rolls = [];
    const h = harness({ random: () => { rolls.push(1); return 0.5; } });
    welcome(h).drop(1006);
    const delays = [];
    for (let i = 0; i < 8; i += 1) {
      delays.push(...h.timers.delays());
      h.timers.tick(h.timers.delays()[0]);
      h.socket().drop(1006); // the attempt fails before opening
    }
    assert.deepEqual(delays, [125, 250, 500, 1000, 2000, 4000, 5000, 5000]);
    assert.equal(h.sockets.length, 9);
    h.timers.tick(h.timers.delays()[0]);
    welcome(h).drop(1006);
    assert.deepEqual(h.timers.delays(), [125], 'attempt counter reset by the welcome');
  });

  test('1001 server shutdown reconnects; disconnect and reconnect events fire', () => {
    const h = harness();
    const events = [];
    h.now.on('disconnect', (e) => events.push(['disconnect', e.code, e.reconnecting]));
    h.now.on('reconnect', (i) => events.push(['reconnect', i.clientId, i.resumed]));
    h.now.on('connect', (i) => events.push(['connect', i.clientId]));
    welcome(h).drop(1001, 'shutdown');
    assert.equal(h.now.state, 'waiting');
    h.timers.tick(125);
    assert.equal(h.sockets.length, 2);
    welcome(h, { resumed: true });
    assert.deepEqual(events, [['connect', 'c-1'], ['disconnect', 1001, true], ['connect', 'c-1'], ['reconnect', 'c-1', true]]);
  });

  test('1008 waits the whole cap before trying again (no hammering)', () => {
    for (const code of [1008, 1003, 1009]) {
      const h = harness({ random: () => 0 });
      welcome(h).drop(code);
      assert.deepEqual(h.timers.delays(), [10000], `close code ${code}`);
      h.timers.tick(9999);
      assert.equal(h.sockets.length, 1);
      h.timers.tick(1);
      assert.equal(h.sockets.length, 2);
    }
  });

  test('a rate-limited or failed hello waits the cap; a protocol refusal stops', () => {
    for (const [code, state, delays] of [[-32029, 'waiting', [10000]], [-32603, 'waiting', [10000]],
      [-32600, 'closed', []], [-32602, 'closed', []]]) {
      const h = harness();
      h.now.on('error', () => {});
      const s = h.socket();
      s.h.open();
      s.push({ jsonrpc: '2.0', id: s.last().id, error: { code, message: 'no', data: { retry_after: 2 } } });
      s.drop(1008);
      assert.deepEqual(h.timers.delays(), delays, `hello error ${code}`);
      assert.equal(h.now.state, state, `hello error ${code}`);
    }
  });

  test('an auth function that throws waits the cap without sending a hello', () => {
    const h = harness({ auth: () => { throw new Error('not logged in'); } });
    const errors = [];
    h.now.on('error', (e) => errors.push(e.message));
    const s = h.socket();
    s.h.open();
    assert.deepEqual(s.sent, []);
    assert.equal(s.closedWith.code, 1000);
    s.drop(1000);
    assert.deepEqual(h.timers.delays(), [10000]);
    assert.deepEqual(errors, ['not logged in']);
  });

  test('the stored token is sent in the next hello (identity resume)', () => {
    const h = harness();
    welcome(h).drop(1006);
    h.timers.tick(10000);
    h.socket().h.open();
    assert.deepEqual(h.socket().last().params, { protocol: 1, token: 'tok-1' });
  });

  test('a token from storage (a reload) is sent in the first hello', () => {
    const storage = memoryStorage();
    storage.setItem('nowgate.token:ws://test/ws', 'tok-old');
    const h = harness({ storage });
    h.socket().h.open();
    assert.equal(h.socket().last().params.token, 'tok-old');
  });

  test('the now.token notification updates the callable server functions', () => {
    const h = harness();
    const s = welcome(h);
    assert.equal(typeof h.now.syncPosition, 'function');
    s.push({ jsonrpc: '2.0', method: 'now.token', params: { token: 'tok-3', functions: ['staffOnly'] } });
    assert.equal(typeof h.now.staffOnly, 'function');
    assert.equal(h.now.syncPosition, undefined, 'functions no longer listed disappear');
    s.push({ jsonrpc: '2.0', method: 'now.token', params: { token: 'tok-4' } });
    assert.equal(typeof h.now.staffOnly, 'function', 'a token without a list keeps the functions');
  });

  test('the now.token notification replaces the stored token', () => {
    const h = harness();
    const s = welcome(h);
    s.push({ jsonrpc: '2.0', method: 'now.token', params: { token: 'tok-2' } });
    assert.equal(h.storage.getItem('nowgate.token:ws://test/ws'), 'tok-2');
    s.push({ jsonrpc: '2.0', method: 'now.token', params: { token: 42 } });
    assert.equal(h.storage.getItem('nowgate.token:ws://test/ws'), 'tok-2', 'non-string tokens are ignored');
    s.drop(1006);
    h.timers.tick(10000);
    h.socket().h.open();
    assert.equal(h.socket().last().params.token, 'tok-2');
  });

  test('a storage that throws falls back to memory', () => {
    const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('denied'); }, removeItem() {} };
    const h = harness({ storage: broken });
    welcome(h).drop(1006);
    h.timers.tick(10000);
    h.socket().h.open();
    assert.equal(h.socket().last().params.token, 'tok-1');
  });

  test('events from a replaced connection are ignored', () => {
    const h = harness();
    const old = welcome(h);
    old.drop(1006);
    h.timers.tick(10000);
    welcome(h);
    old.drop(1006);
    assert.equal(h.now.state, 'open');
    old.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'everyone', path: 'x', value: 1 } });
    assert.equal(h.now.vars.everyone.x, undefined);
  });

  test('stale server functions disappear when a later welcome no longer lists them', () => {
    const h = harness();
    welcome(h).drop(1006);
    h.timers.tick(10000);
    welcome(h, { functions: ['grab'] });
    assert.equal(typeof h.now.grab, 'function');
    assert.equal(h.now.syncPosition, undefined);
  });
});

describe('variables', () => {
  test('the welcome snapshot is readable and read-only', () => {
    'use strict';
    const h = harness();
    welcome(h);
    assert.deepEqual(JSON.parse(JSON.stringify(h.now.vars)), WELCOME.vars);
    assert.equal(h.now.vars.everyone.position.left, 1);
    assert.throws(() => { h.now.vars.everyone.score = 1; }, TypeError);
    assert.throws(() => { h.now.vars.everyone.position.left = 9; }, TypeError);
    assert.throws(() => { delete h.now.vars.everyone.position; }, TypeError);
    assert.throws(() => { h.now.vars.groups.red.score = 9; }, TypeError);
    assert.throws(() => { h.now.vars = {}; }, TypeError);
    assert.equal(h.socket().sent.length, 1, 'nothing reached the server');
  });

  test('now.set and now.del apply to everyone, groups and client, with a change event', () => {
    const h = harness();
    const s = welcome(h);
    const changes = [];
    h.now.on('change', (c) => changes.push(c));
    const before = h.now.vars;
    s.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'everyone', path: 'score', value: 5 } });
    s.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'group:red', path: 'score', value: 4 } });
    s.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'group:blue', path: 'flag', value: { up: true } } });
    s.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'client', path: 'nick', value: 'ann' } });
    s.push({ jsonrpc: '2.0', method: 'now.del', params: { scope: 'everyone', path: 'position' } });
    assert.deepEqual(JSON.parse(JSON.stringify(h.now.vars)), {
      everyone: { score: 5 }, groups: { red: { score: 4 }, blue: { flag: { up: true } } }, client: { nick: 'ann' },
    });
    assert.equal(before.everyone.position.left, 1, 'an old snapshot is unchanged');
    assert.deepEqual(changes.map((c) => [c.scope, c.path, c.deleted]), [
      ['everyone', 'score', false], ['group:red', 'score', false], ['group:blue', 'flag', false],
      ['client', 'nick', false], ['everyone', 'position', true],
    ]);
    assert.throws(() => { h.now.vars.groups.blue.flag.up = false; }, TypeError);
  });

  test('malformed now.set / now.del and unknown scopes are ignored', () => {
    const h = harness();
    const s = welcome(h);
    const before = h.now.vars;
    for (const params of [null, [], { scope: 'everyone' }, { scope: 'nobody', path: 'x', value: 1 },
      { scope: 'group:', path: 'x', value: 1 }, { scope: 'everyone', path: 3, value: 1 }]) {
      s.push({ jsonrpc: '2.0', method: 'now.set', params });
      s.push({ jsonrpc: '2.0', method: 'now.del', params });
    }
    assert.equal(h.now.vars, before);
  });

  test('prototype-like variable names are plain keys', () => {
    const h = harness();
    const s = welcome(h);
    s.push('{"jsonrpc":"2.0","method":"now.set","params":{"scope":"everyone","path":"__proto__","value":{"polluted":true}}}');
    s.push({ jsonrpc: '2.0', method: 'now.set', params: { scope: 'group:__proto__', path: 'constructor', value: 1 } });
    assert.equal({}.polluted, undefined);
    assert.equal(Object.getPrototypeOf(h.now.vars.everyone), null);
    assert.deepEqual(Object.keys(h.now.vars.everyone), ['position', '__proto__']);
    assert.equal(h.now.vars.groups.__proto__.constructor, 1);
  });
});

describe('server to client calls', () => {
  test('a notification calls the assigned client function with positional params', () => {
    const h = harness();
    const s = welcome(h);
    const got = [];
    h.now.updatePosition = (pos) => got.push(pos);
    s.push({ jsonrpc: '2.0', method: 'updatePosition', params: [{ left: 10, top: 20 }] });
    assert.deepEqual(got, [{ left: 10, top: 20 }]);
    assert.equal(s.sent.length, 1, 'notifications are never answered');
  });

  test('a request is answered with the result, awaiting a promise, with the same id (string ids too)', async () => {
    const h = harness();
    const s = welcome(h);
    h.now.ask = (a, b) => Promise.resolve(a + b);
    s.push({ jsonrpc: '2.0', id: 'srv-7', method: 'ask', params: [2, 3] });
    await tick();
    assert.deepEqual(s.last(), { jsonrpc: '2.0', id: 'srv-7', result: 5 });
    h.now.updatePosition = () => undefined;
    s.push({ jsonrpc: '2.0', id: 8, method: 'updatePosition', params: { left: 1, top: 1 } });
    await tick();
    assert.deepEqual(s.last(), { jsonrpc: '2.0', id: 8, result: null });
  });

  test('an unknown, unassigned or unlisted function answers -32601 and is never called', async () => {
    const h = harness();
    const s = welcome(h);
    let called = false;
    h.now.notListed = () => { called = true; };
    s.push({ jsonrpc: '2.0', id: 1, method: 'updatePosition', params: [] }); // listed, not assigned
    s.push({ jsonrpc: '2.0', id: 2, method: 'notListed', params: [] }); // assigned, not listed
    s.push({ jsonrpc: '2.0', id: 3, method: 'syncPosition', params: [] }); // a server stub
    s.push({ jsonrpc: '2.0', id: 4, method: 'now.hello', params: [] });
    h.now.ask = 42; // listed, not a function
    s.push({ jsonrpc: '2.0', id: 5, method: 'ask', params: [] });
    await tick();
    assert.equal(called, false);
    assert.deepEqual(s.sent.slice(1), [1, 2, 3, 4, 5].map((id) => ({ jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } })));
  });

  test('prototype names are never dispatched, even when the server lists them', async () => {
    const h = harness();
    const s = welcome(h);
    for (const [i, name] of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'on', 'call'].entries()) {
      s.push({ jsonrpc: '2.0', id: i, method: name, params: [] });
      s.push({ jsonrpc: '2.0', method: name, params: [] });
    }
    await tick();
    const answers = s.sent.slice(1);
    assert.equal(answers.length, 7);
    for (const a of answers) assert.deepEqual(a.error, { code: -32601, message: 'Method not found' });
  });

  test('a throwing or rejecting function answers -32603 without its error text', async () => {
    const h = harness();
    const s = welcome(h);
    const reported = [];
    h.now.on('error', (e) => reported.push(e.message));
    h.now.ask = () => { throw new Error('secret /home/x stack'); };
    s.push({ jsonrpc: '2.0', id: 1, method: 'ask', params: [] });
    h.now.updatePosition = () => Promise.reject(new Error('secret 2'));
    s.push({ jsonrpc: '2.0', id: 2, method: 'updatePosition', params: [] });
    h.now.toString = () => ({ big: 1n }); // listed; its result cannot be encoded
    s.push({ jsonrpc: '2.0', id: 3, method: 'toString', params: [] });
    await tick();
    assert.deepEqual(s.sent.slice(1), [
      { jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'Internal error' } },
      { jsonrpc: '2.0', id: 2, error: { code: -32603, message: 'Internal error' } },
      { jsonrpc: '2.0', id: 3, error: { code: -32603, message: 'Internal error' } },
    ]);
    assert.ok(!JSON.stringify(s.sent).includes('secret'));
    assert.deepEqual(reported, ['secret /home/x stack', 'secret 2']);
  });

  test('an answer is not sent on a newer connection', async () => {
    const h = harness();
    const s = welcome(h);
    let finish;
    h.now.ask = () => new Promise((r) => { finish = r; });
    s.push({ jsonrpc: '2.0', id: 1, method: 'ask', params: [] });
    s.drop(1006);
    h.timers.tick(10000);
    const s2 = welcome(h);
    finish(1);
    await tick();
    assert.equal(s2.sent.length, 1);
  });
});

describe('events', () => {
  test('on returns an unsubscribe function; off removes; listener errors do not break the client', () => {
    const h = harness();
    const seen = [];
    const off = h.now.on('connect', () => seen.push('a'));
    h.now.on('connect', () => { throw new Error('listener bug'); });
    const b = () => seen.push('b');
    h.now.on('connect', b);
    const orig = console.error;
    console.error = () => {};
    try {
      welcome(h).drop(1006);
      off();
      h.now.off('connect', b);
      h.timers.tick(10000);
      welcome(h);
    } finally {
      console.error = orig;
    }
    assert.deepEqual(seen, ['a', 'b']);
    assert.equal(h.now.state, 'open');
  });
});

describe('module', () => {
  const API = ['NowError', 'backoffDelay', 'connect', 'createClient', 'createNow', 'memoryStorage', 'webSocketTransport'];

  test('loads in Node without a DOM, defines no globals, exports the API', () => {
    assert.deepEqual(Object.keys(NowModule).sort(), API);
    assert.deepEqual(Object.keys(NowJS).sort(), API);
    assert.equal(NowModule.createClient, NowModule.createNow);
    assert.equal(globalThis.now, undefined);
    assert.equal(globalThis.NowJS, undefined);
  });

  test('the classic now.js is exactly the build of now.mjs (no drift between the two)', async () => {
    const dir = new URL('../../src/nowgate/nowjs/', import.meta.url);
    const [moduleSource, classic] = await Promise.all(
      [readFile(new URL('now.mjs', dir), 'utf8'), readFile(new URL('now.js', dir), 'utf8')]);
    assert.equal(classic, buildClassic(moduleSource), 'run: node scripts/build-nowjs.mjs');
    assert.throws(() => buildClassic(moduleSource + 'export const extra = 1;\n'), /only export/);
  });

  test('connect() resolves a path against the page host and uses ws/wss', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'location');
    const urls = [];
    const transport = (url) => { urls.push(url); return { send() {}, close() {} }; };
    try {
      for (const [protocol, host] of [['https:', 'example.org'], ['http:', '127.0.0.1:8000']]) {
        Object.defineProperty(globalThis, 'location', { value: { protocol, host }, configurable: true });
        NowJS.connect({ transport, storage: memoryStorage() });
        NowJS.connect({ transport, storage: memoryStorage(), url: '/gw' });
      }
      NowJS.connect({ transport, storage: memoryStorage(), url: 'wss://other.example/ws' });
    } finally {
      if (saved) Object.defineProperty(globalThis, 'location', saved); else delete globalThis.location;
    }
    assert.deepEqual(urls, ['wss://example.org/ws', 'wss://example.org/gw', 'ws://127.0.0.1:8000/ws',
      'ws://127.0.0.1:8000/gw', 'wss://other.example/ws']);
  });

  test('createClient requires a transport', () => {
    assert.throws(() => createClient({}), TypeError);
  });
});

describe('as a plain browser script', () => {
  // Runs now.js the way a <script src="/nowjs/now.js"> tag does: in a fresh global scope
  // with WebSocket, location, document.currentScript and sessionStorage.
  async function loadInPage(attrs = {}) {
    const vm = await import('node:vm');
    const source = await readFile(new URL('../../src/nowgate/nowjs/now.js', import.meta.url), 'utf8');
    const sockets = [];
    const timers = fakeTimers();
    const session = new Map();
    class FakeWebSocket {
      constructor(url) { this.url = url; this.sent = []; sockets.push(this); }
      send(text) { this.sent.push(JSON.parse(text)); }
      close() {}
    }
    const page = {
      WebSocket: FakeWebSocket,
      location: { protocol: 'https:', host: 'demo.example:8443' },
      document: { currentScript: { getAttribute: (name) => attrs[name] ?? null } },
      sessionStorage: {
        getItem: (k) => (session.has(k) ? session.get(k) : null),
        setItem: (k, v) => session.set(k, String(v)),
        removeItem: (k) => session.delete(k),
      },
      setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout, console,
    };
    Object.defineProperty(page, 'localStorage', { get() { throw new Error('localStorage must not be used'); } });
    vm.createContext(page);
    vm.runInContext(source, page, { filename: 'now.js' });
    return { page, sockets, session, timers };
  }

  test('defines the globals now and NowJS and connects to wss://<page host>/ws', async () => {
    const { page, sockets } = await loadInPage();
    assert.equal(typeof page.NowJS.createClient, 'function');
    assert.equal(typeof page.now.ready, 'function');
    assert.deepEqual(sockets.map((s) => s.url), ['wss://demo.example:8443/ws']);
  });

  test('data-url picks the path; data-autoconnect="false" defines only NowJS', async () => {
    assert.deepEqual((await loadInPage({ 'data-url': '/gateway' })).sockets.map((s) => s.url),
      ['wss://demo.example:8443/gateway']);
    const manual = await loadInPage({ 'data-autoconnect': 'false' });
    assert.equal(manual.page.now, undefined);
    assert.equal(manual.sockets.length, 0);
  });

  test('the token goes to sessionStorage, never to localStorage or the URL', async () => {
    const { page, sockets, session, timers } = await loadInPage();
    const ws = sockets[0];
    ws.onopen();
    assert.deepEqual(ws.sent[0].params, { protocol: 1, token: null });
    ws.onmessage({ data: JSON.stringify({ jsonrpc: '2.0', id: ws.sent[0].id, result: { ...WELCOME, token: 'secret-tok' } }) });
    assert.equal(page.now.clientId, 'c-1');
    assert.deepEqual([...session.entries()], [['nowgate.token:wss://demo.example:8443/ws', 'secret-tok']]);
    ws.onmessage({ data: new ArrayBuffer(2) }); // binary frames are ignored
    ws.onclose({ code: 1001, reason: 'shutdown' });
    timers.tick(10000);
    assert.equal(sockets.length, 2);
    assert.ok(!sockets[1].url.includes('secret-tok'));
    sockets[1].onopen();
    assert.equal(sockets[1].sent[0].params.token, 'secret-tok');
  });
});

describe('recovery (wire extension, only when the server offers it)', () => {
  const STREAM = { stream: { epoch: 'e1', offset: 10 } };
  const note = (offset, n) => ({ jsonrpc: '2.0', method: 'updatePosition', params: [{ left: n, top: 0 }], offset });

  test('without a stream in the welcome nothing changes: no since, offsets ignored', async () => {
    const h = harness();
    const seen = [];
    h.now.updatePosition = (p) => { seen.push(p.left); };
    const s = welcome(h);
    s.push(note(5, 1)); s.push(note(5, 2));
    s.drop(1006);
    h.timers.tick(10000);
    h.socket().h.open();
    assert.equal('since' in h.socket().last().params, false);
    assert.deepEqual(seen, [1, 2]);
  });

  test('resume sends since = last delivered offset; replayed duplicates are dropped', async () => {
    const h = harness();
    const seen = [], connects = [];
    h.now.updatePosition = (p) => { seen.push(p.left); };
    h.now.on('connect', (i) => connects.push(i.recovered));
    const s = welcome(h, STREAM);
    s.push(note(11, 1)); s.push(note(12, 2));
    s.drop(1006);
    h.timers.tick(10000);
    const again = h.socket();
    again.h.open();
    const hello = again.last();
    assert.deepEqual(hello.params.since, { epoch: 'e1', offset: 12 });
    again.push({ jsonrpc: '2.0', id: hello.id, result: { ...WELCOME, stream: { epoch: 'e1', offset: 14 }, recovered: true, resumed: true } });
    again.push(note(12, 2)); again.push(note(13, 3)); again.push(note(14, 4)); again.push(note(13, 3));
    assert.deepEqual(seen, [1, 2, 3, 4], 'each message exactly once, in order');
    assert.deepEqual(connects, [false, true]);
  });

  test('a failed recovery (new epoch) starts from the head and says recovered: false', async () => {
    const h = harness();
    const seen = [], connects = [];
    h.now.updatePosition = (p) => { seen.push(p.left); };
    h.now.on('connect', (i) => connects.push(i.recovered));
    welcome(h, STREAM).drop(1006);
    h.timers.tick(10000);
    const again = h.socket();
    again.h.open();
    again.push({ jsonrpc: '2.0', id: again.last().id, result: { ...WELCOME, stream: { epoch: 'e2', offset: 3 }, recovered: false } });
    again.push(note(3, 0)); again.push(note(4, 1));
    assert.deepEqual(seen, [1]);
    assert.deepEqual(connects, [false, false]);
  });
});
