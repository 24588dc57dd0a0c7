/* nowgate drag demo: the NowJS drag example, hardened (no inline script or style: strict CSP).
 *
 * Convergence rule: one writer at a time, and the last word is the server's.
 * - pointerdown calls grab(); only a granted grab lets this page move the box. The lock is a
 *   3 s lease, renewed by every syncPosition (and a keep-alive while the pointer rests).
 * - While dragging, the latest position is sent with syncPosition at most once per animation
 *   frame; the server calls updatePosition on every other page, never on this one.
 * - pointerup sends the last position (if not sent yet), waits for its answer, then calls
 *   release(); the server then sets the everyone-variable `position` (now.set to every page,
 *   this one included): that final value is authoritative, every page snaps to it, so pages
 *   converge even if an updatePosition was lost. A page that joins later starts from the
 *   welcome's vars.everyone.position.
 * - A refused grab (someone else holds the lock) moves nothing and says who holds it.
 *
 * Test hook: window.nowDemo = {received, sent, refused, clientId, resumed, connected, dragging}.
 */
(function () {
  'use strict';

  var now = window.now;
  var stage = document.getElementById('stage');
  var box = document.getElementById('draggable');
  var statusEl = document.getElementById('status');
  var holderEl = document.getElementById('holder');
  var meEl = document.getElementById('me');
  var MAX = 10000, KEEPALIVE_MS = 1000;

  var hook = (window.nowDemo = {
    received: 0, sent: 0, refused: 0, clientId: null, resumed: false, connected: false, dragging: false,
  });

  var pos = { left: 40, top: 40 };
  var drag = null; // {pointerId, dx, dy, granted: null|true, latest, lastSent, inflight, up, frame, lastSendAt}
  var releasing = Promise.resolve();

  function valid(p) {
    return p !== null && typeof p === 'object' && Number.isFinite(p.left) && Number.isFinite(p.top);
  }
  function place(p) {
    pos = { left: p.left, top: p.top };
    box.style.left = p.left + 'px';
    box.style.top = p.top + 'px';
  }
  function setStatus(text) { statusEl.textContent = text; statusEl.className = text.replace('…', ''); }
  function setHolder(text, busy) { holderEl.textContent = text; holderEl.classList.toggle('busy', !!busy); }
  function clamp(v, hi) { return Math.round(Math.max(0, Math.min(v, hi, MAX))); }
  function pointer(e) {
    var r = stage.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  // ---- the connection
  function connected(info) {
    hook.clientId = info.clientId;
    hook.resumed = info.resumed;
    hook.connected = true;
    meEl.textContent = 'you are ' + info.clientId;
    setStatus('connected');
    var p = now.vars.everyone.position;
    if (!drag && valid(p)) place(p);
  }
  now.on('connect', connected);
  // Deferred scripts run one by one, and the event loop may run between them: the welcome
  // can arrive after now.js ran but before this file did.
  if (now.state === 'open') now.ready().then(connected);

  now.on('disconnect', function (e) {
    hook.connected = false;
    setStatus(e.reconnecting ? 'reconnecting…' : 'disconnected');
    if (drag) stopDrag(drag); // the server drops the lock of a closed connection
  });

  // The final position, set by the server when the holder releases the lock.
  now.on('change', function (c) {
    if (c.scope !== 'everyone' || c.path !== 'position' || c.deleted || !valid(c.value)) return;
    if (drag && drag.granted) return; // this page holds the lock: it is the writer
    box.classList.remove('remote');
    place(c.value);
    setHolder('nobody is dragging');
  });

  // Called by the server on every page except the one dragging.
  now.updatePosition = function (p) {
    hook.received += 1;
    if (!valid(p) || (drag && drag.granted)) return;
    box.classList.add('remote');
    place(p);
    setHolder('someone else is dragging', true);
  };

  // ---- dragging
  function frame(fn) {
    // Hidden pages get no animation frames; a timer keeps a background drag flowing.
    if (document.visibilityState === 'visible') requestAnimationFrame(fn); else setTimeout(fn, 50);
  }

  function send(d, p) {
    d.lastSent = p;
    d.lastSendAt = Date.now();
    hook.sent += 1;
    d.inflight = now.syncPosition({ left: p.left, top: p.top }).then(function (accepted) {
      if (accepted === false && drag === d) lost(d);
    }, function () { /* rate limited or disconnected: the next frame or the final send retries */ });
    return d.inflight;
  }

  function flush(d) {
    d.frame = false;
    if (drag === d && d.granted && d.latest && d.latest !== d.lastSent) send(d, d.latest);
  }

  function schedule(d) {
    if (d.frame) return;
    d.frame = true;
    frame(function () { flush(d); });
  }

  function stopDrag(d) {
    if (drag === d) drag = null;
    clearInterval(d.keepalive);
    hook.dragging = false;
    box.classList.remove('dragging');
    try { box.releasePointerCapture(d.pointerId); } catch (e) { /* not captured */ }
  }

  function lost(d) {
    stopDrag(d);
    setHolder('someone else took over', true);
  }

  function granted(d, r) {
    d.granted = true;
    hook.dragging = true;
    box.classList.remove('remote');
    box.classList.add('dragging');
    setHolder('you are dragging');
    if (valid(r.position) && !d.latest) place(r.position);
    d.keepalive = setInterval(function () {
      if (drag === d && Date.now() - d.lastSendAt >= KEEPALIVE_MS) send(d, d.latest || pos);
    }, KEEPALIVE_MS);
    if (d.latest) { place(d.latest); schedule(d); }
    if (d.up) finish(d);
  }

  function refused(d, r) {
    stopDrag(d);
    hook.refused += 1;
    if (r && valid(r.position)) place(r.position);
    var who = r && typeof r.holder === 'string' ? r.holder : 'someone else';
    setHolder(who + ' is dragging: wait until they let go', true);
  }

  function finish(d) {
    var last = d.latest;
    stopDrag(d);
    if (last && last !== d.lastSent) send(d, last);
    var wait = d.inflight || Promise.resolve();
    releasing = wait.then(function () { return now.release(); }).then(function () {
      if (!drag) setHolder('nobody is dragging');
    }, function () { /* disconnected: the server releases the lock of a closed connection */ });
  }

  box.addEventListener('pointerdown', function (e) {
    if (drag || !e.isPrimary || e.button !== 0 || !hook.connected) return;
    e.preventDefault();
    try { box.setPointerCapture(e.pointerId); } catch (err) { /* pointer already gone */ }
    var at = pointer(e);
    var d = (drag = { pointerId: e.pointerId, dx: at.x - pos.left, dy: at.y - pos.top, granted: null,
      latest: null, lastSent: null, inflight: null, up: false, frame: false, lastSendAt: 0 });
    releasing.then(function () { return now.grab(); }).then(function (r) {
      if (drag !== d) return;
      if (r && r.granted === true) granted(d, r); else refused(d, r);
    }, function () {
      if (drag !== d) return;
      stopDrag(d);
      setHolder('could not take the box, try again', true);
    });
  });

  box.addEventListener('pointermove', function (e) {
    var d = drag;
    if (!d || e.pointerId !== d.pointerId) return;
    var at = pointer(e);
    d.latest = {
      left: clamp(at.x - d.dx, stage.clientWidth - box.offsetWidth),
      top: clamp(at.y - d.dy, stage.clientHeight - box.offsetHeight),
    };
    if (d.granted) { place(d.latest); schedule(d); }
  });

  function up(e) {
    var d = drag;
    if (!d || e.pointerId !== d.pointerId) return;
    d.up = true;
    if (d.granted) finish(d); // otherwise the grab's answer decides
  }
  box.addEventListener('pointerup', up);
  box.addEventListener('pointercancel', up);
  box.addEventListener('lostpointercapture', up);

  place(pos);
})();
