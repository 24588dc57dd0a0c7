/*! nowgate browser client: the shared `now` namespace over JSON-RPC 2.0 WebSockets (docs/protocol.md, version 1).
 *
 * One source, two forms (both served by the gateway under /nowjs/):
 * - now.mjs, the ES module (the source):
 *     import { connect } from '/nowjs/now.mjs';
 *     const now = connect({ url: '/ws', auth: () => myCredential });
 *   TypeScript: now.d.ts / now.d.mts; connect<Contract>() with the declarations that
 *   `nowgate types POLICY` writes types every server function, client function and variable.
 * - now.js, the classic-script build of now.mjs (scripts/build-nowjs.mjs, checked by the
 *   node tests): <script src="/nowjs/now.js"></script> defines the global `now`, connected to
 *   ws(s)://<page host>/ws (another path or URL: data-url="..."), and `NowJS`; with
 *   data-autoconnect="false" only `NowJS` (now = NowJS.connect({auth, url})). CommonJS
 *   require() of now.js returns the same NowJS object. Both are CSP-clean (no eval, no inline).
 *
 * The protocol core (createNow; createClient is its older name) does not own its transport:
 * it is given a factory transport(url, {open, receive, close}) -> {send(text), close(code,
 * reason)}, plus storage,
 * timers and random, so tests drive it without a socket. The factory must call its handlers
 * asynchronously (as WebSocket does), never from inside the factory call.
 *
 * Decisions:
 * - Calls while not connected (before a welcome, during a reconnect) wait in a bounded FIFO
 *   queue (queueLimit, 100) and are sent in order right after the next welcome. A call that
 *   finds the queue full rejects at once with NowError code "queue_full". A call already sent
 *   when the connection drops rejects with "disconnected" and is never re-sent (the server may
 *   or may not have run it: at most once). Every call rejects with "timeout" after callTimeout
 *   ms (30 s; 0 disables), queued or not. When the client stops for good (hello refused,
 *   close()), what is still queued rejects with that reason ("closed" or the server's error).
 * - Errors from the server are NowError with the numeric JSON-RPC code, message and data
 *   (data.retry_after for -32029). Local conditions use string codes: "disconnected",
 *   "queue_full", "timeout", "closed", "invalid_welcome".
 * - The signed token lives in sessionStorage (per tab, survives a reload) or in memory;
 *   never in localStorage, never in the URL. It is sent in every hello to resume the identity.
 * - Reconnect: exponential backoff with full jitter, delay = random() * min(cap, base * 2^n),
 *   base 250 ms, cap 10 s, n reset by each welcome. 1001 (server shutdown) and network drops
 *   reconnect that way; 1008 (policy violation), 1003 and 1009 wait the whole cap (no
 *   hammering); a refused hello (-32003 auth refused, -32600/-32601/-32602 wrong protocol)
 *   stops for good (now.connect() starts again), as does a 4000 close (below); any other
 *   hello error (-32029, -32603), an invalid welcome or an auth function that throws waits
 *   the cap.
 * - Variables belong to the server: now.vars is a deep-frozen snapshot {everyone, groups,
 *   client}, replaced copy-on-write by now.set / now.del; assigning to it throws a TypeError in
 *   strict code and never reaches the server. Each change emits "change".
 * - Client functions are plain assignments (now.updatePosition = fn). A server call is
 *   dispatched only when its name is in the welcome's client_functions AND is an own property
 *   of `now` holding a function: inherited names (constructor, __proto__, toString) never
 *   resolve. Unknown: -32601; a throw or rejection: -32603 with no error text.
 * - Missed-message recovery (docs/protocol.md): the first hello opts in with recover: true;
 *   the client keeps its position, the epoch and the seq of the last numbered message it
 *   processed (in memory: a reloaded page starts from the welcome's state), and after the
 *   welcome's recovery.replayed messages the welcome's own epoch and seq; a reconnect presents
 *   it with the token. The gateway replays what was missed before anything new, so each
 *   message reaches the page once and in order (one at or before the position, which a
 *   correct gateway never sends, is dropped). "connect" carries recovered (null: a gateway
 *   without the extension) and reason: after recovered: false (history exceeded, gateway
 *   restarted, identity not resumed) messages were lost and now.vars is the welcome's state,
 *   to re-read. After a recovered reconnect now.vars follows the replayed changes, then takes
 *   the welcome's snapshot: nothing stale stays.
 * - 4000 (a resume of this identity on another connection found this one silent and took it
 *   over): the client stops with NowError "replaced" and forgets its token and position, so
 *   neither it nor a later now.connect() takes the identity back.
 * - Events (now.on / now.off): connect (every welcome), reconnect (every welcome after the
 *   first), disconnect ({code, reason, reconnecting, delay}, only after a welcome), change, error.
 *   Events are not replayed: a script that may run after the welcome (deferred scripts let the
 *   event loop run between them) also checks now.state === "open", or awaits now.ready().
 */
// GENERATED from now.mjs by scripts/build-nowjs.mjs: edit now.mjs, then rebuild.
(function (root) {
  'use strict';

  var hasOwn = Function.prototype.call.bind(Object.prototype.hasOwnProperty);
  var PENALTY_CODES = [1003, 1008, 1009];
  var REFUSALS = [-32003, -32600, -32601, -32602]; // hello answers that retrying cannot change
  var REPLACED = 4000; // another connection resumed this identity

  class NowError extends Error {
    constructor(code, message, data) {
      super(message);
      this.name = 'NowError';
      this.code = code;
      if (data !== undefined) this.data = data;
    }
  }

  function backoffDelay(attempt, random, base, cap) {
    return Math.floor(random() * Math.min(cap, base * Math.pow(2, attempt)));
  }

  function memoryStorage() {
    var m = new Map();
    return {
      getItem: function (k) { return m.has(k) ? m.get(k) : null; },
      setItem: function (k, v) { m.set(k, String(v)); },
      removeItem: function (k) { m.delete(k); },
    };
  }

  // Null-prototype copies: a key such as "__proto__" or "constructor" is just a key.
  function dict(src) { return Object.assign(Object.create(null), src); }
  function isObj(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
  function freezeDeep(v) {
    if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
      Object.freeze(v);
      Object.keys(v).forEach(function (k) { freezeDeep(v[k]); });
    }
    return v;
  }
  function scopeDict(v) { return freezeDeep(dict(isObj(v) ? v : null)); }
  function snapshot(v) {
    v = isObj(v) ? v : {};
    var groups = Object.create(null);
    if (isObj(v.groups)) Object.keys(v.groups).forEach(function (g) { groups[g] = scopeDict(v.groups[g]); });
    return Object.freeze(dict({ everyone: scopeDict(v.everyone), groups: Object.freeze(groups), client: scopeDict(v.client) }));
  }
  function strings(list) { return Array.isArray(list) ? list.filter(function (s) { return typeof s === 'string'; }) : []; }

  function createNow(options) {
    var o = options || {};
    if (typeof o.transport !== 'function') throw new TypeError('createNow: options.transport is required');
    var url = o.url || '/ws';
    var storage = o.storage || memoryStorage();
    var timers = o.timers || {
      setTimeout: function (f, ms) { return setTimeout(f, ms); },
      clearTimeout: function (h) { clearTimeout(h); },
    };
    var random = o.random || Math.random;
    var base = o.backoffBase ?? 250, cap = o.backoffCap ?? 10000;
    var queueLimit = o.queueLimit ?? 100, callTimeout = o.callTimeout ?? 30000;
    var tokenKey = 'nowgate.token:' + url, memToken = null;

    var nextId = 1, pending = new Map(), queue = [], listeners = new Map(), readyWaiters = [];
    var state = 'idle', conn = null, gen = null, helloId = null, attempt = 0, retryTimer = null;
    var refusal = null, penalty = false, stopReason = null, everWelcomed = false, info = null;
    var clientFunctions = new Set(), stubs = new Set(), vars = snapshot(null);
    // Recovery: the position processed ({epoch, seq}; null: none yet), and while a replay is
    // processed, how many replayed messages are left and the welcome's position and vars.
    var position = null, replay = null;

    function loadToken() {
      try { var t = storage.getItem(tokenKey); if (typeof t === 'string' && t) return t; } catch (e) { /* memory */ }
      return memToken;
    }
    function forgetIdentity() {
      memToken = null; position = null;
      try { storage.removeItem(tokenKey); } catch (e) { /* memory only */ }
    }
    function saveToken(t) {
      if (typeof t !== 'string' || !t) return;
      memToken = t;
      try { storage.setItem(tokenKey, t); } catch (e) { /* memory only */ }
    }

    function emit(type, payload) {
      (listeners.get(type) || []).slice().forEach(function (fn) {
        try { fn(payload); } catch (e) { console.error(e); }
      });
    }
    function report(err) {
      if ((listeners.get('error') || []).length) emit('error', err); else console.error(err);
    }
    function write(msg) {
      try { conn.send(typeof msg === 'string' ? msg : JSON.stringify(msg)); return true; } catch (e) { return false; }
    }

    // ---- connection lifecycle
    function open() {
      if (state === 'connecting' || state === 'open') return;
      if (retryTimer !== null) { timers.clearTimeout(retryTimer); retryTimer = null; }
      state = 'connecting'; refusal = null; penalty = false;
      var g = (gen = {});
      try {
        conn = o.transport(url, {
          open: function () { if (gen === g) hello(); },
          receive: function (text) { if (gen === g) receive(text); },
          close: function (code, reason) { if (gen === g) closed(code, reason); },
        });
      } catch (e) {
        report(e);
        closed(1006, 'transport failed');
      }
    }

    function hello() {
      helloId = nextId++;
      var auth, params = { protocol: 1, token: loadToken(),
        recover: position === null ? true : { epoch: position.epoch, seq: position.seq } };
      try {
        auth = typeof o.auth === 'function' ? o.auth() : o.auth;
      } catch (e) {
        report(e);
        penalty = true;
        try { conn.close(1000, 'no credential'); } catch (e2) { /* already closing */ }
        return;
      }
      if (auth != null) params.auth = String(auth);
      write({ jsonrpc: '2.0', id: helloId, method: 'now.hello', params: params });
    }

    function welcome(msg) {
      helloId = null;
      var w = msg.result;
      if (hasOwn(msg, 'error') || !isObj(w) || typeof w.client_id !== 'string') {
        var err = hasOwn(msg, 'error') ? toError(msg.error) : new NowError('invalid_welcome', 'invalid welcome');
        if (REFUSALS.indexOf(err.code) >= 0) refusal = err; else penalty = true;
        report(err);
        try { conn.close(1000, 'hello failed'); } catch (e) { /* already closing */ }
        return;
      }
      saveToken(w.token);
      setFunctions(strings(w.functions));
      clientFunctions = new Set(strings(w.client_functions));
      state = 'open'; attempt = 0;
      var recovery = takeRecovery(w);
      info = { clientId: w.client_id, resumed: w.resumed === true,
        recovered: recovery.recovered, reason: recovery.reason, welcome: w };
      var again = everWelcomed;
      everWelcomed = true;
      var q = queue; queue = [];
      q.forEach(function (item) {
        var p = item.id === null ? null : pending.get(item.id);
        if (p) p.sent = true;
        if (item.id === null || p) write(item.frame);
      });
      readyWaiters.splice(0).forEach(function (r) { r.resolve(info); });
      emit('connect', info);
      if (again) emit('reconnect', info);
    }

    function closed(code, reason) {
      var wasOpen = state === 'open';
      gen = null; conn = null; helloId = null; state = 'idle';
      pending.forEach(function (p, id) {
        if (p.sent) settle(id, p).reject(new NowError('disconnected', 'connection lost before the answer'));
      });
      var delay = null;
      if (code === REPLACED && !stopReason) {
        forgetIdentity();
        stop(new NowError('replaced', 'another connection resumed this identity'));
      } else if (stopReason || refusal) {
        stop(stopReason || refusal);
      } else {
        delay = penalty || PENALTY_CODES.indexOf(code) >= 0 ? cap : backoffDelay(attempt++, random, base, cap);
        state = 'waiting';
        retryTimer = timers.setTimeout(function () { retryTimer = null; open(); }, delay);
      }
      if (wasOpen) emit('disconnect', { code: code, reason: reason || '', reconnecting: delay !== null, delay: delay });
    }

    function stop(err) {
      state = 'closed';
      stopReason = err;
      queue.splice(0).forEach(function (item) {
        var p = item.id === null ? null : pending.get(item.id);
        if (p) settle(item.id, p).reject(err);
      });
      readyWaiters.splice(0).forEach(function (r) { r.reject(err); });
    }

    // ---- inbound
    function toError(e) {
      if (!isObj(e)) return new NowError(-32603, 'malformed error');
      return new NowError(typeof e.code === 'number' ? e.code : -32603,
        typeof e.message === 'string' ? e.message : 'server error', e.data);
    }

    function receive(text) {
      var msg;
      try { msg = JSON.parse(text); } catch (e) { return; }
      if (!isObj(msg) || msg.jsonrpc !== '2.0') return;
      if (typeof msg.method === 'string') {
        if (state !== 'open') return;
        if (advance(msg.seq)) inbound(msg, hasOwn(msg, 'id'));
        if (replay !== null && --replay.left === 0) {
          position = replay.position; vars = replay.vars; replay = null; // the welcome's, from here on
        }
      } else if (hasOwn(msg, 'id') && (hasOwn(msg, 'result') || hasOwn(msg, 'error'))) {
        if (helloId !== null && msg.id === helloId) return welcome(msg);
        var p = pending.get(msg.id);
        if (!p || !p.sent) return;
        settle(msg.id, p);
        if (hasOwn(msg, 'error')) p.reject(toError(msg.error)); else p.resolve(msg.result);
      }
    }

    // The welcome's answer to the recovery request; recovered null: the gateway does not speak it.
    function takeRecovery(w) {
      var r = w.recovery;
      replay = null;
      if (!isObj(r) || typeof r.epoch !== 'string' || !Number.isSafeInteger(r.seq)) {
        position = null; vars = snapshot(w.vars);
        return { recovered: null, reason: null };
      }
      var recovered = w.recovered === true, after = { epoch: r.epoch, seq: r.seq };
      if (recovered && Number.isSafeInteger(r.replayed) && r.replayed > 0) {
        // Until the replay is processed: positions of the epoch presented, vars from where it was.
        replay = { left: r.replayed, position: after, vars: snapshot(w.vars) };
      } else {
        position = after; vars = snapshot(w.vars);
      }
      return { recovered: recovered, reason: typeof r.reason === 'string' ? r.reason : null };
    }

    // A numbered message moves the position; false for one already processed.
    function advance(seq) {
      if (position === null || !Number.isSafeInteger(seq)) return true;
      if (seq <= position.seq) return false;
      position = { epoch: position.epoch, seq: seq };
      return true;
    }

    function inbound(msg, isRequest) {
      var name = msg.method, g = gen;
      if (!isRequest && name === 'now.set') return applyVar('set', msg.params);
      if (!isRequest && name === 'now.del') return applyVar('del', msg.params);
      if (!isRequest && name === 'now.token') {
        if (!isObj(msg.params)) return;
        // Sent when the client's groups change: a fresh token, and the functions now callable.
        if (Array.isArray(msg.params.functions)) setFunctions(strings(msg.params.functions));
        return saveToken(msg.params.token);
      }
      var fn = clientFunctions.has(name) && !stubs.has(name) && hasOwn(now, name) ? now[name] : null;
      function answer(body) {
        if (!isRequest || gen !== g) return;
        body.jsonrpc = '2.0'; body.id = msg.id;
        if (!write(body)) write({ jsonrpc: '2.0', id: msg.id, error: { code: -32603, message: 'Internal error' } });
      }
      function fail(e) { report(e); answer({ error: { code: -32603, message: 'Internal error' } }); }
      if (typeof fn !== 'function') return answer({ error: { code: -32601, message: 'Method not found' } });
      var args = Array.isArray(msg.params) ? msg.params : msg.params === undefined ? [] : [msg.params];
      var r;
      try { r = fn.apply(now, args); } catch (e) { return fail(e); }
      Promise.resolve(r).then(function (v) { answer({ result: v === undefined ? null : v }); }, fail);
    }

    function applyVar(op, p) {
      if (!isObj(p) || typeof p.scope !== 'string' || typeof p.path !== 'string') return;
      var scope = p.scope, path = p.path, next = dict(vars);
      function edit(d) {
        d = dict(d);
        if (op === 'set') d[path] = freezeDeep(p.value); else delete d[path];
        return Object.freeze(d);
      }
      if (scope === 'everyone' || scope === 'client') {
        next[scope] = edit(vars[scope]);
      } else if (scope.indexOf('group:') === 0 && scope.length > 6) {
        var name = scope.slice(6), groups = dict(vars.groups);
        groups[name] = edit(hasOwn(groups, name) ? groups[name] : null);
        next.groups = Object.freeze(groups);
      } else {
        return;
      }
      vars = Object.freeze(next);
      emit('change', { scope: scope, path: path, value: op === 'set' ? p.value : undefined, deleted: op === 'del' });
    }

    // ---- outbound
    function settle(id, p) {
      pending.delete(id);
      if (p.timer !== null) timers.clearTimeout(p.timer);
      return p;
    }

    function request(method, params) {
      return new Promise(function (resolve, reject) {
        if (state === 'closed') return reject(stopReason);
        var id = nextId++;
        var p = { resolve: resolve, reject: reject, sent: false, timer: null,
          frame: JSON.stringify({ jsonrpc: '2.0', id: id, method: method, params: params }) };
        if (state !== 'open' && queue.length >= queueLimit) {
          return reject(new NowError('queue_full', 'not connected and ' + queueLimit + ' calls already wait'));
        }
        pending.set(id, p);
        if (callTimeout > 0) {
          p.timer = timers.setTimeout(function () {
            if (pending.get(id) !== p) return;
            queue = queue.filter(function (item) { return item.id !== id; });
            p.timer = null;
            settle(id, p).reject(new NowError('timeout', method + ': no answer within ' + callTimeout + ' ms'));
          }, callTimeout);
        }
        if (state === 'open') { p.sent = true; write(p.frame); } else queue.push({ id: id, frame: p.frame });
      });
    }

    function notify(method, params) {
      var frame = JSON.stringify({ jsonrpc: '2.0', method: method, params: params });
      if (state === 'open') return write(frame);
      if (state === 'closed' || queue.length >= queueLimit) return false;
      queue.push({ id: null, frame: frame });
      return true;
    }

    function setFunctions(list) {
      stubs.forEach(function (name) { if (list.indexOf(name) < 0) { delete now[name]; stubs.delete(name); } });
      list.forEach(function (name) {
        if (stubs.has(name)) return;
        if (name in api) { console.warn('nowgate: server function "' + name + '" is reachable only as now.call()'); return; }
        Object.defineProperty(now, name, {
          value: function () { return request(name, Array.prototype.slice.call(arguments)); },
          enumerable: true, configurable: true, writable: false,
        });
        stubs.add(name);
      });
    }

    // ---- public API: on a frozen prototype, so `now`'s own properties are only client functions
    // (assigned by the page) and server-function stubs (defined from the welcome).
    var api = Object.freeze({
      call: function (name) { return request(name, Array.prototype.slice.call(arguments, 1)); },
      notify: function (name) { return notify(name, Array.prototype.slice.call(arguments, 1)); },
      setVar: function (scope, path, value) { return request('now.set', { scope: scope, path: path, value: value }); },
      ready: function () {
        if (state === 'open') return Promise.resolve(info);
        if (state === 'closed') return Promise.reject(stopReason);
        return new Promise(function (resolve, reject) { readyWaiters.push({ resolve: resolve, reject: reject }); });
      },
      on: function (type, fn) {
        if (!listeners.has(type)) listeners.set(type, []);
        listeners.get(type).push(fn);
        return function () { api.off(type, fn); };
      },
      off: function (type, fn) {
        var l = listeners.get(type);
        if (l && l.indexOf(fn) >= 0) l.splice(l.indexOf(fn), 1);
      },
      connect: function () {
        if (state !== 'closed') return;
        stopReason = null; attempt = 0; state = 'idle';
        open();
      },
      close: function () {
        if (state === 'closed') return;
        if (retryTimer !== null) { timers.clearTimeout(retryTimer); retryTimer = null; }
        stopReason = new NowError('closed', 'client closed');
        var c = conn;
        if (c) {
          closed(1000, 'client closed');
          try { c.close(1000, 'client closed'); } catch (e) { /* already closed */ }
        } else {
          stop(stopReason);
        }
      },
      get vars() { return vars; },
      get clientId() { return info ? info.clientId : null; },
      get state() { return state; },
    });
    var now = Object.create(api);
    if (o.autoconnect !== false) open();
    return now;
  }

  function webSocketTransport(url, h) {
    var ws = new WebSocket(url);
    ws.onopen = function () { h.open(); };
    ws.onmessage = function (e) { if (typeof e.data === 'string') h.receive(e.data); };
    ws.onclose = function (e) { h.close(e.code, e.reason); };
    return { send: function (t) { ws.send(t); }, close: function (c, r) { ws.close(c, r); } };
  }

  function sessionStore() {
    try {
      var s = globalThis.sessionStorage;
      s.setItem('nowgate.probe', '1');
      s.removeItem('nowgate.probe');
      return s;
    } catch (e) {
      return memoryStorage();
    }
  }

  function resolveUrl(u) {
    if (/^wss?:\/\//i.test(u)) return u;
    var l = globalThis.location;
    return (l.protocol === 'https:' ? 'wss://' : 'ws://') + l.host + (u.charAt(0) === '/' ? u : '/' + u);
  }

  function connect(options) {
    var o = Object.assign({}, options);
    o.url = resolveUrl(o.url || '/ws');
    o.transport = o.transport || webSocketTransport;
    o.storage = o.storage || sessionStore();
    return createNow(o);
  }

  var NowJS = { createNow: createNow, createClient: createNow, connect: connect, NowError: NowError, webSocketTransport: webSocketTransport, memoryStorage: memoryStorage, backoffDelay: backoffDelay };
  if (typeof module === 'object' && module && module.exports) { module.exports = NowJS; return; }
  root.NowJS = NowJS;
  var script = typeof document !== 'undefined' ? document.currentScript : null;
  if (script && script.getAttribute('data-autoconnect') === 'false') return;
  if (typeof WebSocket === 'function' && typeof location !== 'undefined') {
    root.now = NowJS.connect({ url: (script && script.getAttribute('data-url')) || undefined });
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
