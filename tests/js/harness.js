/* Shared by the page harnesses (kiosk_page.js, capture_page.js): a scripted clock and DOM stand-ins,
 * so a page's script runs in Node's vm with time advanced by the test, not by the wall clock. */
"use strict";

/** A scripted clock: timers run only inside ``advance``, in order. */
function clock() {
  let now = 0;
  let timers = [];
  let nextId = 1;
  const api = {
    now: () => now,
    setTimeout(fn, ms) { const id = nextId++; timers.push({ id, at: now + (ms || 0), fn }); return id; },
    setInterval(fn, ms) {
      const id = nextId++;
      const tick = () => { timers.push({ id, at: now + ms, fn: tick }); fn(); };
      timers.push({ id, at: now + ms, fn: tick });
      return id;
    },
    clearInterval(id) { timers = timers.filter((t) => t.id !== id); },
    /** Run the timers due within the next ``ms`` milliseconds, in order. */
    advance(ms) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        if (!timers.length || timers[0].at > end) break;
        const t = timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
  api.clearTimeout = api.clearInterval;
  return api;
}

/** A DOM element stand-in with what the pages touch. */
function element(extra) {
  const listeners = {};
  return Object.assign({
    dataset: {}, style: {}, hidden: false, textContent: "", innerHTML: "", className: "", disabled: false,
    clientWidth: 1280, clientHeight: 800, classList: { toggle() {} },
    addEventListener(type, fn) { (listeners[type] = listeners[type] || []).push(fn); },
    dispatch(type, event) { (listeners[type] || []).splice(0).forEach((fn) => fn(event || {})); },
    prepend() {},
  }, extra || {});
}

/** Let pending promise callbacks run. */
function settle() { return new Promise((resolve) => setImmediate(resolve)); }

/** Prints one line per check; ``done()`` exits 1 when any failed. */
function checker() {
  const failures = [];
  return {
    check(what, ok, detail) {
      console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : ` (${detail})`}`);
      if (!ok) failures.push(what);
    },
    done() {
      if (failures.length) {
        console.log(`${failures.length} check(s) failed`);
        process.exit(1);
      }
    },
  };
}

module.exports = { clock, element, settle, checker };
