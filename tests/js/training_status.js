/* Drives static/enrollment/training.js (the admin's index status bar) in Node with a scripted clock,
 * socket and server: it asks status.json once its socket is open (what was sent before it joined the
 * group is lost), falls back to polling when its socket closes, stops polling once the server
 * refuses (logged out, right withdrawn), drops the "earlier version" note when a new index is
 * announced, never goes back to an older state of a run, asks again when a new index shows that it
 * missed a run's end or when the server says messages were lost (a Redis outage: "resync"), and keeps
 * the training runs table's rows up to date, asks about a queued or running run it has heard nothing of
 * for 30 s (its worker may have died with it); screen readers hear a run's changes of state, not each of
 * its progress messages.
 * Run by tests/test_page_scripts.py; one line per check, exit 1 on a failure.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const { clock, element, settle, checker } = require("./harness");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "..", "static", "enrollment", "training.js"), "utf8");

/** A row of the training runs table (``{id, state, message, finished}``), as the admin renders it. */
function row(r) {
  const cells = {};
  ["state", "message", "finished_at"].forEach((name) => {
    cells[".field-" + name] = element({ textContent: name === "finished_at" ? r.finished : r[name] });
  });
  const tr = element({ querySelector: (sel) => cells[sel] || null, cells });
  tr.bar = element({ dataset: { run: String(r.id) }, value: r.progress || 0, closest: () => tr });
  tr.pct = element({ dataset: { run: String(r.id) } });
  return tr;
}

/** A photo's line on a person's page: its text follows its markup, as in a browser. */
function photoLine(id, html) {
  const el = element({ dataset: { photo: id } });
  Object.defineProperty(el, "innerHTML", { get: () => html, set: (v) => { html = v; } });
  Object.defineProperty(el, "textContent", { get: () => html.replace(/<[^>]*>/g, "") });
  return el;
}

/** The table's body: ``replaceWith`` puts the page's new body in its place. */
function tbody(rows, page) {
  const body = {
    rows: rows.map(row),
    querySelectorAll: (sel) => (sel === "progress.mn-progress" ? body.rows.map((tr) => tr.bar) : []),
    replaceWith(fresh) { page.table = fresh; page.reloads += 1; },
  };
  return body;
}

/** A fresh admin page; ``answers`` is the queue of the server's answers to status.json. ``options``:
 * ``latest`` (the run the page was rendered with), ``rows`` (the training runs table, none: a page
 * without it), ``server`` (the rows the table's page has now, when reloaded). */
function page(answers, options = {}) {
  const time = clock();
  const sockets = [];
  const counts = { polls: 0 };
  class FakeSocket { constructor(url) { this.url = url; sockets.push(this); } }
  const outdated = element();
  const index = element();
  const parts = {};          // the run box's progress, state and message
  const run = element({ querySelector: (sel) => parts[sel] || (parts[sel] = element()) });
  // the live region: each text written to it is read out
  const said = element({ heard: [] });
  Object.defineProperty(said, "textContent", { get() { return this.heard[this.heard.length - 1] || ""; },
                                               set(v) { this.heard.push(v); } });
  const root = element({
    dataset: { ws: "/ws/admin/training/", poll: "/admin/enrollment/trainingrun/status.json", },
    querySelector: (sel) => (sel === ".mn-run" ? run : sel === ".mn-run-said" ? said : index),
    querySelectorAll: (sel) => (sel === ".mn-outdated" ? [outdated] : []),
  });
  const json = { get: () => "application/json" };
  const world = { table: null, reloads: 0, pages: 0, server: options.server || [],
                  // a person's page: its photos' lines, and those of the page as the server has it now
                  photos: (options.photos || []).map(([id, text]) => photoLine(id, text)),
                  serverPhotos: options.serverPhotos || {} };
  if (options.rows) world.table = tbody(options.rows, world);
  const latest = options.latest ? element({ textContent: JSON.stringify(options.latest) }) : null;
  const HERE = "https://admin.test/admin/enrollment/trainingrun/";
  const byRun = (sel, part) => {      // 'progress.mn-progress[data-run="5"]', '.mn-pct[data-run="5"]'
    const id = (/data-run="(\d+)"/.exec(sel) || [])[1];
    return world.table ? world.table.rows.filter((tr) => tr.bar.dataset.run === id).map((tr) => tr[part]) : [];
  };
  const context = {
    console, JSON, String, Promise,
    setInterval: time.setInterval, clearInterval: time.clearInterval, setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    location: { protocol: "https:", host: "admin.test", href: HERE },
    WebSocket: FakeSocket,
    fetch: (url) => {
      if (url === HERE) {      // the table's page: its rows as the server has them now (see DOMParser)
        world.pages += 1;
        return Promise.resolve({ status: 200, ok: true, text: () => Promise.resolve(JSON.stringify(world.server)) });
      }
      counts.polls += 1;
      const a = answers.shift() || { status: 200, body: { runs: [], index: null } };
      return Promise.resolve({ type: a.type || "basic", status: a.status, ok: a.status === 200, headers: json,
                               json: () => Promise.resolve(a.body) });
    },
    DOMParser: class {
      parseFromString(text) {
        return { querySelector: (sel) => {
          if (sel === "#result_list tbody") return world.table ? tbody(JSON.parse(text), world) : null;
          const id = (/data-photo="(\d+)"/.exec(sel) || [])[1];
          return id && world.serverPhotos[id] ? { innerHTML: world.serverPhotos[id] } : null;
        } };
      }
    },
    document: {
      getElementById: (id) => (id === "mn-status" ? root : id === "mn-latest-run" ? latest : null),
      querySelector: (sel) => (sel === "#result_list tbody" ? world.table : null),
      querySelectorAll: (sel) => (sel.startsWith("progress.mn-progress") ? byRun(sel, "bar")
                                  : sel.startsWith(".mn-pct") ? byRun(sel, "pct")
                                  : sel === ".mn-verdict-line" ? world.photos : []),
    },
  };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return {
    time, sockets, counts, outdated, index, world, said,
    state: () => (parts[".mn-run-state"] || {}).textContent,
    progress: () => (parts.progress || {}).value,
    /** The table's row of run ``id``: its state, message and finished columns. */
    row: (id) => {
      const tr = world.table.rows.find((r) => r.bar.dataset.run === String(id));
      return tr && [".field-state", ".field-message", ".field-finished_at"].map((c) => tr.cells[c].textContent).join(" · ");
    },
  };
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
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "index", version: null, people: 0, templates: 0, outdated: false }) });
  check("an erasure that withdrew the active version: the bar says none is active",
        p.index.textContent.startsWith("No index active"), p.index.textContent);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "index", version: 2, people: 1, templates: 2, outdated: false }) });
  check("and the version its rebuild makes shows again", p.index.textContent.startsWith("Index v2 active"),
        p.index.textContent);

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

  // ---- the run ended before the socket joined the group, and the "index" message came before the
  // answer to the question asked on open: that answer was thrown away, the bar stayed at "running"
  const starting = { id: 4, state: "running", progress: 0, message: "starting", started_at: "2026-12-01T20:36:00+00:00",
                     finished_at: null, index_version: null };
  const ended = { ...starting, state: "succeeded", progress: 100, message: "index v4 active",
                  finished_at: "2026-12-01T20:36:01+00:00", index_version: 4 };
  const v4 = { type: "index", version: 4, people: 2, templates: 4, outdated: false };
  p = page([{ status: 200, body: { runs: [ended], index: { ...v4, type: undefined } } }], { latest: starting });
  check("the bar starts with the run the page was rendered with", p.state() === "#4 running", p.state());
  opened(p);
  p.sockets[0].onmessage({ data: JSON.stringify(v4) });
  await settle();
  check("an answer newer than what the bar shows is kept, whatever message came meanwhile",
        p.state() === "#4 succeeded", p.state());
  p = page([{ status: 200, body: { runs: [starting], index: null } },
            { status: 200, body: { runs: [ended], index: { ...v4, type: undefined } } }], { latest: starting });
  opened(p);
  await settle();                        // answered just before the run ended: still running
  p.sockets[0].onmessage({ data: JSON.stringify(v4) });
  await settle();
  check("a new index while the bar shows its run still going: the page asks again",
        p.counts.polls === 2 && p.state() === "#4 succeeded", `${p.counts.polls} polls, "${p.state()}"`);
  p.sockets[0].onmessage({ data: JSON.stringify(v4) });
  await settle();
  check("and not when the bar already shows the run that made it", p.counts.polls === 2, `${p.counts.polls} polls`);
  p = page([{ status: 200, body: { runs: [{ ...starting, progress: 5, started_at: "2026-12-01T20:40:00+00:00" }],
                                   index: null } }], { latest: { ...starting, progress: 60 } });
  opened(p);
  await settle();
  check("a run taken over by another worker (started again) is followed from its new start",
        p.state() === "#4 running" && p.progress() === 5, `"${p.state()}" at ${p.progress()}%`);

  // ---- a socket open through a Redis outage: what was sent meanwhile is lost; once it has joined its
  // group again the server says "resync" and the page reads the state again
  p = page([{ status: 200, body: { runs: [starting], index: null } },
            { status: 200, body: { runs: [{ ...ended, id: 5, state: "running", progress: 30, message: "embedding",
                                            finished_at: null, index_version: null }, ended],
                                   index: { ...v4, type: undefined } } }], { latest: starting });
  opened(p);
  await settle();
  p.time.advance(20000);                 // Redis away: run 4 ends, run 5 starts, no message arrives
  await settle();
  check("an open socket that hears nothing for less than 30 s: the bar stays on what it was told",
        p.counts.polls === 1 && p.state() === "#4 running", `${p.counts.polls} polls, "${p.state()}"`);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "resync" }) });
  await settle();
  check("a resync message: the page asks status.json and shows the run that started meanwhile",
        p.counts.polls === 2 && p.state() === "#5 running" && p.progress() === 30 &&
        p.index.textContent.startsWith("Index v4 active"),
        `${p.counts.polls} polls, "${p.state()}" at ${p.progress()}%, "${p.index.textContent}"`);
  p = page([{ status: 200, body: { runs: [starting], index: null } },
            { status: 200, body: { runs: [ended], index: { ...v4, type: undefined } } }], { latest: starting });
  opened(p);
  await settle();
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "resync" }) });
  await settle();
  check("and the run that ended meanwhile as ended, with the index it made",
        p.state() === "#4 succeeded" && p.index.textContent.startsWith("Index v4 active"),
        `"${p.state()}", "${p.index.textContent}"`);
  p.time.advance(30000);
  await settle();
  check("asked once: no polling while the socket is open", p.counts.polls === 2, `${p.counts.polls} polls`);

  // ---- the training runs table: a row's state, message and finished time follow the run
  const finished4 = { id: 4, state: "succeeded", progress: 100, message: "index v4 active", finished: "Dec. 1, 2026, 8:36 p.m." };
  const assembling = { id: 5, state: "running", progress: 86, message: "assembling the index", finished: "-" };
  const done5 = { ...assembling, state: "succeeded", progress: 100, message: "index v5 active", finished: "Dec. 1, 2026, 8:40 p.m." };
  p = page([], { rows: [assembling, finished4], server: [done5, finished4] });
  opened(p);
  await settle();
  const live = (r) => p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: r }) });
  live({ ...assembling, progress: 95, message: "writing and switching the index" });
  check("a progress message updates its row's message", p.row(5) === "running · writing and switching the index · -",
        p.row(5));
  await settle();
  check("without reloading the page", p.world.pages === 0, `${p.world.pages} reloads`);
  live({ ...done5, finished_at: "2026-12-01T20:40:00+00:00", index_version: 5 });
  check("the row of a run that ends says so at once", p.row(5).startsWith("succeeded · index v5 active"), p.row(5));
  await settle();
  await settle();
  check("and shows its finished time as the server renders it (the table reloaded once)",
        p.world.pages === 1 && p.row(5) === "succeeded · index v5 active · Dec. 1, 2026, 8:40 p.m.",
        `${p.world.pages} reloads, "${p.row(5)}"`);
  const run6 = { id: 6, state: "running", progress: 0, message: "starting", finished: "-" };
  p.world.server = [run6, done5, finished4];
  live(run6);
  p.world.server = [{ ...run6, state: "succeeded", progress: 100, message: "index v6 active", finished: "8:41 p.m." },
                    done5, finished4];
  live({ ...run6, state: "succeeded", progress: 100, message: "index v6 active" });  // before the reload is back
  for (let i = 0; i < 4; i++) await settle();
  check("a new run gets its row; a run ending while the table reloads reloads it once more",
        p.world.pages === 3 && p.row(6) === "succeeded · index v6 active · 8:41 p.m.", `${p.world.pages} reloads, "${p.row(6)}"`);
  live({ ...run6, state: "succeeded", progress: 100, message: "index v6 active" });
  await settle();
  check("and no more reloads for what the table already shows", p.world.pages === 3, `${p.world.pages} reloads`);

  // ---- a person's page: a photo just added says "pending" until the run that embeds it ends
  p = page([], { photos: [["7", "good · q 0.90 · no mask · embedded"], ["8", "good · q 0.88 · no mask · pending"]],
                 serverPhotos: { 7: "good · q 0.90 · no mask · embedded", 8: "good · q 0.88 · no mask · embedded" } });
  opened(p);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 9, state: "running", progress: 50,
                                                                          message: "embedding" } }) });
  await settle();
  check("a photo's line is not read again while its run is running", p.world.pages === 0 &&
        p.world.photos[1].innerHTML.endsWith("pending"), `${p.world.pages} reads, "${p.world.photos[1].innerHTML}"`);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 9, state: "succeeded", progress: 100,
                                                                          message: "index v3 active" } }) });
  for (let i = 0; i < 3; i++) await settle();
  check("once it ends, the photos' lines are read again (the pending one now embedded)",
        p.world.pages === 1 && p.world.photos[1].innerHTML.endsWith("embedded"),
        `${p.world.pages} reads, "${p.world.photos[1].innerHTML}"`);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 10, state: "succeeded", progress: 100,
                                                                           message: "index v4 active" } }) });
  for (let i = 0; i < 3; i++) await settle();
  check("and not again when none is pending", p.world.pages === 1, `${p.world.pages} reads`);

  // ---- screen readers: a run's changes of state are read out, its progress messages are not
  p = page([{ status: 200, body: { runs: [starting], index: null } }], { latest: starting });
  opened(p);
  await settle();
  check("the run the page opened with is not read out (nor the same state polled again)", p.said.heard.length === 0,
        JSON.stringify(p.said.heard));
  for (let i = 1; i <= 20; i++) {
    p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { ...starting, progress: 4 * i,
                                                                             message: `embedded ${i}/20 photos` } }) });
  }
  check("twenty progress messages: nothing read out (the bar and its message follow them)",
        p.said.heard.length === 0 && p.progress() === 80, `${JSON.stringify(p.said.heard)}, bar at ${p.progress()}`);
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: ended }) });
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 5, state: "queued", progress: 0,
                                                                           message: "queued" } }) });
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 5, state: "running", progress: 2,
                                                                           message: "starting" } }) });
  p.sockets[0].onmessage({ data: JSON.stringify({ type: "progress", run: { id: 5, state: "failed", progress: 40,
                                                                           message: "failed", error: "disk full" } }) });
  check("each change of state is read out once, an ended run with its outcome",
        p.said.heard.join(" | ") === "Index rebuild #4 succeeded: index v4 active | Index rebuild #5 queued | " +
        "Index rebuild #5 running | Index rebuild #5 failed: disk full", JSON.stringify(p.said.heard));

  // ---- a run whose worker died (a server stopped mid-run): nothing more comes of it over the socket,
  // and the server takes it up again only when asked after its heartbeat went stale
  const stalled = { id: 14, state: "running", progress: 6, message: "embedded 1/16 photos",
                    started_at: "2026-12-07T12:26:00+00:00" };
  p = page([{ status: 200, body: { runs: [stalled], index: null } },
            { status: 200, body: { runs: [stalled], index: null } },
            { status: 200, body: { runs: [{ ...stalled, state: "succeeded", progress: 100, message: "index v9 active" }],
                                   index: null } }], { latest: stalled });
  opened(p);
  await settle();
  p.time.advance(29000);
  await settle();
  check("a running run heard of now and then is not asked about", p.counts.polls === 1, `${p.counts.polls} polls`);
  p.time.advance(1000);
  await settle();
  p.time.advance(30000);
  await settle();
  check("one silent for 30 s is asked about, and again while it stays silent, until it has ended",
        p.counts.polls === 3 && p.state() === "#14 succeeded", `${p.counts.polls} polls, "${p.state()}"`);
  p.time.advance(120000);
  await settle();
  check("an ended run is not asked about again", p.counts.polls === 3, `${p.counts.polls} polls`);
  p = page([{ status: 200, body: { runs: [stalled], index: null } }, { type: "opaqueredirect", status: 0, body: null }],
           { latest: stalled });
  opened(p);
  await settle();
  for (let i = 0; i < 20; i++) { p.time.advance(30000); await settle(); }
  check("nor one the server refused to say more of (logged out meanwhile)", p.counts.polls === 2,
        `${p.counts.polls} polls`);

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
