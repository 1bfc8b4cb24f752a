/* Drives static/enrollment/training.js (the admin's index status bar) in Node with a scripted clock,
 * socket and server: it asks status.json once its socket is open (what was sent before it joined the
 * group is lost), falls back to polling when its socket closes, stops polling once the server
 * refuses (logged out, right withdrawn), and drops the "earlier version" note when a new index is
 * announced. Run by tests/test_page_scripts.py; one line per check, exit 1 on a failure.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const { clock, element, settle, checker } = require("./harness");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "..", "static", "enrollment", "training.js"), "utf8");

/** A fresh admin page; ``answers`` is the queue of the server's answers to status.json. */
function page(answers) {
  const time = clock();
  const sockets = [];
  const counts = { polls: 0 };
  class FakeSocket { constructor(url) { this.url = url; sockets.push(this); } }
  const outdated = element();
  const index = element();
  const parts = {};          // the run box's progress, state and message
  const run = element({ querySelector: (sel) => parts[sel] || (parts[sel] = element()) });
  const root = element({
    dataset: { ws: "/ws/admin/training/", poll: "/admin/enrollment/trainingrun/status.json", },
    querySelector: (sel) => (sel === ".mn-run" ? run : index),
    querySelectorAll: (sel) => (sel === ".mn-outdated" ? [outdated] : []),
  });
  const json = { get: () => "application/json" };
  const context = {
    console, JSON, String, Promise,
    setInterval: time.setInterval, clearInterval: time.clearInterval, setTimeout: time.setTimeout,
    location: { protocol: "https:", host: "admin.test" },
    WebSocket: FakeSocket,
    fetch: () => {
      counts.polls += 1;
      const a = answers.shift() || { status: 200, body: { runs: [], index: null } };
      return Promise.resolve({ type: a.type || "basic", status: a.status, ok: a.status === 200, headers: json,
                               json: () => Promise.resolve(a.body) });
    },
    document: {
      getElementById: (id) => (id === "mn-status" ? root : null),
      querySelectorAll: () => [],
    },
  };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return { time, sockets, counts, outdated, index, state: () => (parts[".mn-run-state"] || {}).textContent };
}

const { check, done } = checker();

/** The socket has joined the group (a page without an ``onopen`` does nothing then). */
function opened(p) { if (typeof p.sockets[0].onopen === "function") p.sockets[0].onopen({}); }

async function main() {
  // ---- a live "index" message of this recognizer's version drops the stale note
  let p = page([]);
  check("the page opens the status socket over wss on https", p.sockets[0].url === "wss://admin.test/ws/admin/training/",
        p.sockets[0].url);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "index", version: 3, people: 2, templates: 4, outdated: true }) });
  check("a version still made by the earlier recognizer (an erasure's scrub) keeps the note",
        p.outdated.hidden === false, p.outdated.hidden);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "index", version: 4, people: 2, templates: 4, outdated: false }) });
  check("a version of this recognizer hides it", p.outdated.hidden === true, p.outdated.hidden);
  check("and shows the new version", p.index.textContent.startsWith("Index v4 active"), p.index.textContent);

  // ---- what was sent before the socket joined the group: asked for once it is open
  const finished = { id: 5, state: "succeeded", progress: 100, message: "done" };
  p = page([{ status: 200, body: { runs: [finished], index: { version: 7, people: 2, templates: 4, outdated: false } } }]);
  const polledBefore = p.counts.polls;
  opened(p);
  await settle();
  check("once its socket is open the page asks status.json once",
        polledBefore === 0 && p.counts.polls === 1 && p.state() === "#5 succeeded" &&
        p.index.textContent.startsWith("Index v7 active"),
        `${polledBefore} then ${p.counts.polls} polls, "${p.state()}", "${p.index.textContent}"`);
  p.time.advance(30000);
  await settle();
  check("and not again while the socket is open", p.counts.polls === 1, `${p.counts.polls} polls`);
  p = page([{ status: 200, body: { runs: [{ ...finished, state: "running", progress: 40 }], index: null } }]);
  opened(p);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: finished }) });   // before the answer
  await settle();
  check("an answer older than a socket message does not undo it", p.state() === "#5 succeeded", p.state());

  // ---- polling after the socket closes, until the server refuses
  p = page([{ status: 200, body: { runs: [], index: null } }, { status: 403, body: {} }]);
  p.sockets[0].onclose({ code: 4403 });
  p.time.advance(3000);
  await settle();
  check("a closed socket falls back to polling status.json", p.counts.polls === 1, `${p.counts.polls} polls`);
  p.time.advance(3000);
  await settle();
  p.time.advance(30000);
  await settle();
  check("a 403 stops the polling (asking again cannot help)", p.counts.polls === 2, `${p.counts.polls} polls`);

  p = page([{ type: "opaqueredirect", status: 0, body: null }]);
  p.sockets[0].onerror();
  p.time.advance(3000);
  await settle();
  p.time.advance(30000);
  await settle();
  check("so does a redirect to the login page (logged out)", p.counts.polls === 1, `${p.counts.polls} polls`);
  done();
}
main().catch((e) => { console.error(e); process.exit(2); });
