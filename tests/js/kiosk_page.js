/* Drives static/kiosk/kiosk.js in Node with a scripted clock, camera and WebSocket (no browser):
 * the page's frame rhythm and banner rules, which the real-browser test cannot provoke on demand.
 * Run by tests/test_page_scripts.py; prints one line per check, exits 1 on a failure.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const { clock, element, settle, checker } = require("./harness");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "..", "static", "kiosk", "kiosk.js"), "utf8");
/** The words the server puts in the page's config for ``code`` (recognition/kiosk_text/<code>.json). */
const catalog = (code) => JSON.parse(fs.readFileSync(
  path.join(__dirname, "..", "..", "recognition", "kiosk_text", `${code}.json`), "utf8")).screen;

/** A fresh page: returns the controls of its world. ``encodeMs``: how long toBlob takes;
 * ``cameraError``: the name of the error getUserMedia fails with (none: the camera works; the test
 * may change ``camera.error`` later). ``options``: ``config`` (added to the page's), ``fetch`` (instead
 * of a network that is down), ``holdCamera`` (getUserMedia answers only once ``camera.release()``),
 * ``video`` (the camera's picture size, default 640x480), ``date`` (what ``new Date()`` says),
 * ``permissions`` (``navigator.permissions``), ``sessionStorage``, ``localStorage``, ``pictures`` (the video says when a
 * new picture arrives, requestVideoFrameCallback: the page's ``picture()`` delivers one). */
function page(encodeMs = 0, cameraError = null, options = {}) {
  const time = clock();
  const sockets = [];
  const counts = { captured: 0, statusFetches: 0, reloads: 0 };
  // requests: getUserMedia calls; tracks: those of the streams it gave, each {stopped, end()}
  const camera = { error: cameraError, requests: 0, tracks: [], release: null };
  const held = options.holdCamera ? new Promise((resolve) => { camera.release = resolve; }) : null;
  class FakeSocket {
    constructor(url) {
      this.url = url; this.readyState = FakeSocket.OPEN; this.bufferedAmount = 0; this.sent = 0;
      this.closed = false;
      sockets.push(this);
    }
    send() { this.sent += 1; }
    close() { this.closed = true; }
  }
  FakeSocket.OPEN = 1;
  const pictureCallbacks = [];
  const elements = {
    "kiosk-config": element({ textContent: JSON.stringify(Object.assign(
      { ws_path: "/ws/kiosk/", status_url: "/kiosk/status", max_fps: 8, language: "en", text: catalog("en") },
      options.config)) }),
    camera: element(Object.assign({ readyState: 4, videoWidth: 640, videoHeight: 480, play: async () => {} },
                                  options.pictures ? { requestVideoFrameCallback: (cb) => pictureCallbacks.push(cb) } : {},
                                  options.video)),
    // the screen the video fills (object-fit: cover); the harness's elements are 1280x800
    stage: element(options.stage || {}),
  };
  const listeners = { document: {}, window: {} };
  const listen = (where) => (type, fn) => { (listeners[where][type] = listeners[where][type] || []).push(fn); };
  const RealDate = Date;
  const FixedDate = options.date === undefined ? RealDate
    : class extends RealDate {
      constructor(...args) { super(...(args.length ? args : [options.date])); }
      static now() { return options.date; }
    };
  const context = {
    console,
    Intl, JSON, Math, Promise, Object, Array, String, Number, Error, DOMException: Error, AbortController,
    Date: FixedDate,
    performance: { now: time.now },
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
    setInterval: time.setInterval,
    location: { protocol: "http:", host: "kiosk.test", reload() { counts.reloads += 1; } },
    sessionStorage: options.sessionStorage,
    fetch: (url, init) => {
      counts.statusFetches += 1;
      return options.fetch ? options.fetch(url, init) : Promise.reject(new Error("offline"));
    },
    WebSocket: FakeSocket,
    navigator: { mediaDevices: { getUserMedia: async () => {
      camera.requests += 1;
      if (held) await held;
      if (camera.error) throw Object.assign(new Error(camera.error), { name: camera.error });
      const track = element({ stopped: false, stop() { this.stopped = true; }, end() { this.dispatch("ended"); } });
      camera.tracks.push(track);
      return { getVideoTracks: () => [track], getTracks: () => [track] };
    } }, permissions: options.permissions },
    document: {
      hidden: false,
      getElementById: (id) => elements[id] || (elements[id] = element()),
      createElement: () => (counts.canvas = element({
        getContext: () => ({ drawImage(...args) { counts.captured += 1; counts.drawn = args.slice(1); } }),
        // asynchronous, as in browsers: the callback comes after the capture
        toBlob: (cb) => { time.setTimeout(() => cb({ size: 1000 }), encodeMs); },
      })),
      addEventListener: listen("document"),
      documentElement: { lang: options.lang },
    },
  };
  context.window = { isSecureContext: true, addEventListener: listen("window"), localStorage: options.localStorage };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return {
    context,
    sockets,
    counts,
    camera,
    stage: elements.stage,
    text: (id) => (elements[id] || {}).textContent,
    element: (id) => elements[id],
    advance: time.advance,
    // a socket the page gave up (its handlers detached) hears nothing
    say(socket, msg) { if (socket.onmessage) socket.onmessage({ data: JSON.stringify(msg) }); },
    /** Hide or show the page, as minimising the browser or switching tabs does. */
    setHidden(hidden) {
      context.document.hidden = hidden;
      (listeners.document.visibilitychange || []).forEach((fn) => fn({}));
    },
    fire(type) { (listeners.window[type] || []).forEach((fn) => fn({})); },
    /** The camera delivers a new picture (with ``pictures``). */
    picture() { pictureCallbacks.splice(0).forEach((cb) => cb(time.now(), {})); },
  };
}

const { check, done } = checker();

async function main() {
  // ---- one frame in flight, also after a stall
  let p = page();
  await settle();                                     // getUserMedia, video.play()
  const ws = p.sockets[0];
  p.say(ws, { type: "hello" });
  p.advance(200);
  check("a frame is sent once the socket and the camera are ready", ws.sent === 1, `sent ${ws.sent}`);
  p.advance(1000);
  check("no second frame while the first is unanswered", ws.sent === 1, `sent ${ws.sent}`);
  p.advance(5000);
  check("a frame unanswered for 5 s is given up and the next one sent", ws.sent === 2, `sent ${ws.sent}`);
  p.say(ws, { type: "result", frame: 1, state: "searching" });
  p.advance(600);
  check("the late answer to the given-up frame does not free a third one", ws.sent === 2, `sent ${ws.sent}`);
  p.say(ws, { type: "dropped", frame: 1 });
  p.advance(600);
  check("nor does a 'dropped' for an older frame", ws.sent === 2, `sent ${ws.sent}`);
  p.say(ws, { type: "result", frame: 2, state: "searching" });
  p.advance(200);
  check("the answer to the newest frame frees the next one", ws.sent === 3, `sent ${ws.sent}`);

  // ---- "temporarily unavailable" holds between the frames that say it
  p.say(ws, { type: "error", frame: 3, code: "unavailable", message: "database away" });
  check("'unavailable' is shown", p.stage.dataset.state === "unavailable", p.stage.dataset.state);
  p.advance(200);
  p.say(ws, { type: "result", frame: 4, state: "recognising", progress: 0.2 });
  check("a result right after it does not replace it (no flicker)", p.stage.dataset.state === "unavailable",
        p.stage.dataset.state);
  p.advance(3200);
  p.say(ws, { type: "result", frame: ws.sent, state: "recognising", progress: 0.4 });
  check("results show again once the notice has stopped coming", p.stage.dataset.state === "recognising",
        p.stage.dataset.state);
  // a later disconnect is a lost connection, not the database's earlier blip
  ws.onclose({ code: 1006 });
  check("a disconnect after the database came back says 'connection lost'",
        p.stage.dataset.state === "connection_lost", p.stage.dataset.state);

  // ---- a new socket starts its own count
  p.advance(20000);
  const again = p.sockets[1];
  check("the page reconnects", !!again, `${p.sockets.length} sockets`);
  p.say(again, { type: "hello" });
  p.advance(200);
  check("the new socket gets a frame", again.sent === 1, `sent ${again.sent}`);
  p.say(again, { type: "result", frame: 1, state: "searching" });
  p.advance(200);
  check("and its answer (frame 1 of this socket) frees the next", again.sent === 2, `sent ${again.sent}`);

  // ---- the late answer arriving while the next frame is still being encoded
  p = page(60);
  await settle();
  const slow = p.sockets[0];
  p.say(slow, { type: "hello" });
  while (p.counts.captured < 2) p.advance(10);       // frame 1 given up after 5 s: frame 2 captured
  check("the second frame is being encoded", slow.sent === 1 && p.counts.captured === 2,
        `sent ${slow.sent}, captured ${p.counts.captured}`);
  p.say(slow, { type: "result", frame: 1, state: "searching" });
  p.advance(600);
  check("an answer to the old frame during the encoding does not free a third one", slow.sent === 2,
        `sent ${slow.sent}`);

  // ---- the device cookie is renewed once a day through /kiosk/status
  const fetchesBefore = p.counts.statusFetches;
  p.advance(24 * 3600 * 1000 + 1000);
  check("the page asks /kiosk/status once a day (which renews its cookie)",
        p.counts.statusFetches >= fetchesBefore + 1, `${p.counts.statusFetches - fetchesBefore} fetches`);

  // ---- a slow network: frames go before the answer, a few at most; a quick one keeps one in flight
  p = page();
  await settle();
  const far = p.sockets[0];
  p.say(far, { type: "hello" });
  p.advance(200);
  const farSent = far.sent;
  p.advance(300);                                     // 300 ms later the answer comes: 40 ms at the server
  p.say(far, { type: "result", frame: farSent, state: "searching", ms: 35, server_ms: 40 });
  p.advance(40);
  const afterAnswer = far.sent;
  p.advance(140);
  check("on a 260 ms round trip the next frame goes before the answer to the one in flight",
        far.sent === afterAnswer + 1, `sent ${far.sent} (${afterAnswer} right after the answer)`);
  p.advance(2000);
  check("at most three frames are in flight", far.sent === afterAnswer + 2, `sent ${far.sent}`);
  p.say(far, { type: "dropped", frame: afterAnswer + 1 });
  p.advance(140);
  check("an answer to one of them frees one more", far.sent === afterAnswer + 3, `sent ${far.sent}`);
  p.advance(6000);
  const stalled = far.sent;
  check("frames unanswered for 5 s are given up, each in turn", stalled >= afterAnswer + 6, `sent ${stalled}`);
  far.onclose({ code: 1006 });
  p.advance(20000);
  const next = p.sockets[1];
  p.say(next, { type: "hello" });
  p.advance(1000);
  check("a new socket keeps one frame in flight until it has measured its own round trip", next.sent === 1,
        `sent ${next.sent}`);

  p = page();
  await settle();
  const near = p.sockets[0];
  p.say(near, { type: "hello" });
  for (let i = 0; i < 10; i++) {                      // answered 30 ms after each frame: 20 ms at the server
    p.advance(130);
    p.advance(30);
    p.say(near, { type: "result", frame: near.sent, state: "searching", ms: 18, server_ms: 20 });
  }
  const nearSent = near.sent;
  p.advance(1000);
  check("on a quick network one frame stays in flight", near.sent === nearSent + 1,
        `sent ${near.sent - nearSent} more unanswered`);

  p = page();
  await settle();
  const old = p.sockets[0];
  p.say(old, { type: "hello" });
  p.advance(200);
  p.advance(300);
  p.say(old, { type: "result", frame: old.sent, state: "searching", ms: 35 });
  const oldSent = old.sent;
  p.advance(1000);
  check("a server that does not say how long it held a frame gets one frame in flight", old.sent === oldSent + 1,
        `sent ${old.sent - oldSent} more unanswered`);

  // ---- errors the page has no words for: a glitch is not shown, a run of them is
  p = page();
  await settle();
  const failing = p.sockets[0];
  p.say(failing, { type: "hello" });
  for (let i = 1; i <= 4; i++) { p.advance(200); p.say(failing, { type: "error", frame: i, code: "internal" }); }
  check("four failed frames in a row are not announced", p.stage.dataset.state === "searching",
        p.stage.dataset.state);
  p.advance(200);
  p.say(failing, { type: "error", frame: 5, code: "engine_error" });
  check("the fifth says the kiosk is not working", p.stage.dataset.state === "out_of_order", p.stage.dataset.state);
  p.advance(4000);
  p.say(failing, { type: "result", frame: 6, state: "searching" });
  check("a frame analysed again ends it", p.stage.dataset.state === "searching", p.stage.dataset.state);

  // ---- a camera problem stays on screen whatever the server says
  p = page(0, "NotAllowedError");
  await settle();
  check("a blocked camera is shown", p.stage.dataset.state === "camera_denied", p.stage.dataset.state);
  p.say(p.sockets[0], { type: "error", frame: 0, code: "unavailable" });
  p.sockets[0].onclose({ code: 4013 });
  await settle();                                     // the /kiosk/status check fails: reconnect
  p.advance(20000);
  p.say(p.sockets[1], { type: "hello" });
  check("the database's absence does not hide it (only a reload helps)",
        p.stage.dataset.state === "camera_denied", p.stage.dataset.state);

  // ---- another screen opened this kiosk: this one stops, it does not fight back
  p = page();
  await settle();
  const older = p.sockets[0];
  p.say(older, { type: "hello" });
  p.say(older, { type: "replaced" });
  older.onclose({ code: 4409 });
  p.advance(60000);
  check("a page replaced by another screen says so", p.stage.dataset.state === "replaced", p.stage.dataset.state);
  check("and does not reconnect (it would close the other in turn)", p.sockets.length === 1,
        `${p.sockets.length} sockets`);

  // ---- a stopped page leaves the camera off: no retry turns it on again
  p = page(0, "NotReadableError");
  await settle();                                     // busy: tried again in 5 s
  p.say(p.sockets[0], { type: "hello" });
  p.say(p.sockets[0], { type: "replaced" });
  p.sockets[0].onclose({ code: 4409 });
  p.camera.error = null;                              // the other app lets the camera go
  for (let i = 0; i < 12; i++) { p.advance(5000); await settle(); }
  check("a page replaced while the camera was busy keeps saying so", p.stage.dataset.state === "replaced",
        p.stage.dataset.state);
  check("and does not ask for the camera again", p.camera.requests === 1, `${p.camera.requests} requests`);

  p = page(0, "NotFoundError");
  await settle();                                     // no camera: tried again in 5 s
  p.say(p.sockets[0], { type: "hello" });
  p.say(p.sockets[0], { type: "revoked" });
  p.sockets[0].onclose({ code: 4403 });
  p.camera.error = null;                              // a camera is plugged in
  for (let i = 0; i < 12; i++) { p.advance(5000); await settle(); }
  check("a page revoked while it had no camera says it is no longer a kiosk",
        p.stage.dataset.state === "unpaired", p.stage.dataset.state);
  check("without the advice to stand in front of the camera", p.element("help").hidden === true,
        String(p.element("help").hidden));
  check("and does not ask for the camera again", p.camera.requests === 1, `${p.camera.requests} requests`);

  p = page();
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.camera.tracks[0].end();                           // unplugged: tried again in 3 s
  p.sockets[0].onclose({ code: 4403 });               // revoked meanwhile
  for (let i = 0; i < 12; i++) { p.advance(5000); await settle(); }
  check("a page revoked after its camera was unplugged does not ask for it again",
        p.stage.dataset.state === "unpaired" && p.camera.requests === 1,
        `${p.stage.dataset.state}, ${p.camera.requests} requests`);

  p = page(0, null, { holdCamera: true });            // the camera answers only after the stop
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.say(p.sockets[0], { type: "replaced" });
  p.sockets[0].onclose({ code: 4409 });
  p.camera.release();
  await settle();
  p.advance(1000);
  check("a camera granted after the page stopped is turned off at once",
        p.camera.tracks.length === 1 && p.camera.tracks[0].stopped, `tracks stopped: ${p.camera.tracks.map((t) => t.stopped)}`);
  check("and the page still says it was replaced", p.stage.dataset.state === "replaced", p.stage.dataset.state);

  // ---- a camera back while the connection is down: the outage is shown, not "looking for a face"
  p = page(0, "NotReadableError");
  await settle();                                     // busy: tried again at 5 s
  p.say(p.sockets[0], { type: "hello" });
  p.advance(4900);
  p.sockets[0].onclose({ code: 1006 });               // reconnect in about 0.5 s
  p.camera.error = null;
  p.advance(200);                                     // the camera comes back before the socket
  await settle();
  check("a camera back during an outage says 'connection lost'", p.stage.dataset.state === "connection_lost",
        p.stage.dataset.state);

  // ---- a /kiosk/status call that never answers does not stop the reconnects
  p = page(0, null, { fetch: (url, init) => new Promise((resolve, reject) => {
    if (init && init.signal) init.signal.addEventListener("abort", () => reject(new Error("aborted")));
  }) });
  await settle();
  p.sockets[0].onclose({ code: 1006 });               // refused handshake: the page asks /kiosk/status
  for (let i = 0; i < 6; i++) { p.advance(5000); await settle(); }
  check("an unanswered /kiosk/status is given up and the page reconnects", p.sockets.length >= 2,
        `${p.sockets.length} sockets, ${p.counts.statusFetches} status calls`);

  // ---- renamed in the admin while the page is open: the top bar follows without a reload
  p = page();
  await settle();
  p.say(p.sockets[0], { type: "hello", kiosk: "Front door", location: "", site: "main" });
  p.say(p.sockets[0], { type: "result", frame: 0, state: "searching" });
  p.say(p.sockets[0], { type: "kiosk", kiosk: "Back door", location: "Loading bay", site: "main" });
  check("a 'kiosk' message shows the new name and location",
        p.text("kiosk-name") === "Back door" && p.text("kiosk-location") === "Loading bay",
        `${p.text("kiosk-name")} / ${p.text("kiosk-location")}`);
  check("and changes nothing else on the screen", p.stage.dataset.state === "searching", p.stage.dataset.state);

  // ---- a connection that dies without a close (Wi-Fi dropped, a NAT or proxy forgot it)
  p = page();
  await settle();
  const silent = p.sockets[0];
  p.say(silent, { type: "hello" });
  p.advance(200);
  p.say(silent, { type: "result", frame: 1, state: "checked_in", name: "Eileen", time: "08:59" });
  p.advance(9000);                                    // the server says nothing more
  check("a socket silent for 9 s is kept (a frame may take long)", p.sockets.length === 1
        && p.stage.dataset.state === "checked_in", `${p.sockets.length} sockets, ${p.stage.dataset.state}`);
  p.advance(3000);
  check("a socket silent for 11 s while its frames go unanswered says 'connection lost'",
        p.stage.dataset.state === "connection_lost", p.stage.dataset.state);
  const sentBefore = silent.sent;
  p.advance(5000);
  check("it is closed and no longer used", silent.closed && silent.onmessage === null && silent.onclose === null
        && silent.sent === sentBefore, `closed ${silent.closed}, sent ${silent.sent - sentBefore} more`);
  check("and the page opens a new socket", p.sockets.length === 2, `${p.sockets.length} sockets`);
  if (p.sockets[1]) p.say(p.sockets[1], { type: "hello" });
  check("which works as any other", p.stage.dataset.state === "searching", p.stage.dataset.state);

  // a server that is only slow (models loading) answers the frame sent at the second stall at once
  p = page();
  await settle();
  const loading = p.sockets[0];
  p.say(loading, { type: "hello", ready: false });
  check("a server still loading its models is said to be getting ready, not looking for a face",
        p.stage.dataset.state === "preparing", p.stage.dataset.state);
  for (let ms = 0; loading.sent < 3 && ms < 20000; ms += 10) p.advance(10);
  check("and stays so while its first frames wait", p.stage.dataset.state === "preparing", p.stage.dataset.state);
  p.say(loading, { type: "dropped", frame: 2 });
  p.advance(1500);
  p.say(loading, { type: "result", frame: 1, state: "searching" });
  p.say(loading, { type: "result", frame: 3, state: "searching" });
  p.advance(200);
  check("a slow server's socket is kept", p.sockets.length === 1 && loading.sent === 4 && !loading.closed,
        `${p.sockets.length} sockets, sent ${loading.sent}`);
  check("its first answer ends 'getting ready'", p.stage.dataset.state === "searching", p.stage.dataset.state);

  // a page without a camera sends no frames, and the server says nothing: that is no dead socket
  p = page(0, "NotFoundError");
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  for (let i = 0; i < 12; i++) { p.advance(5000); await settle(); }
  check("a page without a camera keeps its quiet socket", p.sockets.length === 1 && !p.sockets[0].closed,
        `${p.sockets.length} sockets`);

  // ---- the answer to a frame sent before the camera went does not hide the camera's problem
  p = page();
  await settle();
  const late = p.sockets[0];
  p.say(late, { type: "hello" });
  p.advance(200);
  p.camera.tracks[0].end();                           // unplugged with frame 1 in flight: tried again in 3 s
  p.say(late, { type: "result", frame: 1, state: "searching", box: [0.3, 0.3, 0.6, 0.7] });
  check("a late answer after the camera went keeps 'no camera found'",
        p.stage.dataset.state === "no_camera" && p.text("banner-title") === "No camera found"
        && p.element("facebox").hidden, `${p.stage.dataset.state}, box hidden ${p.element("facebox").hidden}`);
  p.advance(3000);
  await settle();                                     // the camera is back
  p.advance(100);
  check("and still frees the next frame", late.sent === 2 && p.stage.dataset.state === "searching",
        `sent ${late.sent}, ${p.stage.dataset.state}`);

  // ---- prompts whose reasons alternate (poor light: too dark, then blurred) are shown
  p = page();
  await settle();
  const dim = p.sockets[0];
  p.say(dim, { type: "hello" });
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "too_dark" });
  check("one prompt alone is not shown (no flicker)", p.stage.dataset.state === "searching", p.stage.dataset.state);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "blurry" });
  check("two prompts in a row are, the latest one", p.stage.dataset.state === "adjust"
        && p.stage.dataset.reason === "blurry", `${p.stage.dataset.state} ${p.stage.dataset.reason}`);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "too_dark" });
  check("a prompt on screen stays for one other reason (no flicker between them)",
        p.stage.dataset.reason === "blurry", p.stage.dataset.reason);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "too_dark" });
  check("and gives way when the other comes twice in a row", p.stage.dataset.reason === "too_dark",
        p.stage.dataset.reason);
  // an overexposed face passes the gate every other frame: the prompt stays through one
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "recognising", progress: 0.1 });
  check("a prompt on screen stays through one 'recognising' between prompts (no flicker)",
        p.stage.dataset.state === "adjust" && p.stage.dataset.reason === "too_dark", p.stage.dataset.state);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "too_bright" });
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "recognising", progress: 0.2 });
  check("and alternating with prompts it never comes back", p.stage.dataset.state === "adjust",
        p.stage.dataset.state);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "recognising", progress: 0.3 });
  check("two in a row take the prompt's place", p.stage.dataset.state === "recognising", p.stage.dataset.state);
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "several" });
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "several" });
  check("two people side by side are asked to come one at a time",
        p.text("banner-title") === "One person at a time, please", p.text("banner-title"));
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "adjust", reason: "too_bright" });
  p.advance(200);
  p.say(dim, { type: "result", frame: dim.sent, state: "unknown" });
  check("an outcome is shown at once, even right after a prompt", p.stage.dataset.state === "unknown",
        p.stage.dataset.state);

  // ---- "not recognised": a masked face is told it may show itself bare for a moment (masked faces are
  // missed several times as often, and the vote goes on), a bare one to see reception
  const RECEPTION = "Please see reception: if you are staff, they can check you in or update your photo.";
  const UNMASK = "If you are staff, lower your mask for a moment and look at the camera, or see reception.";
  check("a bare face not recognised is sent to reception",
        p.text("banner-title") === "Not recognised" && p.text("banner-detail") === RECEPTION, p.text("banner-detail"));
  p = page();
  await settle();
  const masked = p.sockets[0];
  p.say(masked, { type: "hello" });
  p.advance(200);
  p.say(masked, { type: "result", frame: masked.sent, state: "unknown", masked: true });
  check("a masked face not recognised may lower the mask for a moment, or see reception",
        p.text("banner-title") === "Not recognised" && p.text("banner-detail") === UNMASK, p.text("banner-detail"));
  // they leave while it is held (no "looking for a face" then), and someone bare steps in and is not
  // recognised either: the hint was the masked face's
  p.advance(1000);
  p.say(masked, { type: "result", frame: masked.sent, state: "searching" });
  p.advance(1000);
  p.say(masked, { type: "result", frame: masked.sent, state: "unknown", masked: false });
  check("a bare face's 'not recognised' after a masked one's does not keep the mask hint",
        p.text("banner-detail") === RECEPTION, p.text("banner-detail"));

  // ---- the banner is a polite live region (role="status", aria-atomic): a screen reader says it
  // again at each write of its words, so answers that say the same thing (every frame while
  // recognising, a welcome held) write nothing into it; a new state writes its words once
  p = page();
  await settle();
  const spoken = p.sockets[0];
  p.say(spoken, { type: "hello" });
  const writes = { "banner-title": 0, "banner-detail": 0, "banner-icon": 0 };
  for (const id of Object.keys(writes)) {
    const el = p.element(id), prop = id === "banner-icon" ? "innerHTML" : "textContent";
    let value = el[prop];
    Object.defineProperty(el, prop, { get: () => value, set: (v) => { writes[id] += 1; value = v; } });
  }
  const answerTimes = (n, answer) => {
    for (let i = 0; i < n; i += 1) { p.advance(200); p.say(spoken, Object.assign({ type: "result", frame: spoken.sent }, answer)); }
  };
  answerTimes(10, { state: "recognising", progress: 0.1 });
  answerTimes(10, { state: "checked_in", name: "Ana Silva", time: "08:59", masked: true });
  check("a live banner's words are written once per state, not at every frame",
        Object.values(writes).every((n) => n === 2) && p.text("banner-title") === "Welcome, Ana Silva",
        `${JSON.stringify(writes)}, ${p.text("banner-title")}`);

  // ---- a camera held upright: the frame box turns with it (its faces as large as a landscape camera's)
  p = page(0, null, { video: { videoWidth: 720, videoHeight: 1280 }, stage: { clientWidth: 720, clientHeight: 1280 } });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.advance(200);
  check("a portrait camera's frames fit 480x640, not 640x480",
        p.counts.canvas.width === 360 && p.counts.canvas.height === 640, `${p.counts.canvas.width}x${p.counts.canvas.height}`);
  p = page(0, null, { video: { videoWidth: 1280, videoHeight: 720 }, stage: { clientWidth: 1920, clientHeight: 1080 } });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.advance(200);
  check("a landscape one's still fit 640x480", p.counts.canvas.width === 640 && p.counts.canvas.height === 360,
        `${p.counts.canvas.width}x${p.counts.canvas.height}`);
  // a landscape camera on a portrait screen: the screen shows the middle 405 of its 1280 columns
  p = page(0, null, { video: { videoWidth: 1280, videoHeight: 720 }, stage: { clientWidth: 1080, clientHeight: 1920 } });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.advance(200);
  check("a camera cut by the screen sends only what the screen shows (nobody analysed off screen)",
        p.counts.drawn.slice(0, 4).join() === "438,0,405,720" && p.counts.canvas.width === 360
        && p.counts.canvas.height === 640, `${p.counts.drawn}, ${p.counts.canvas.width}x${p.counts.canvas.height}`);
  p.say(p.sockets[0], { type: "result", frame: 1, state: "recognising", progress: 0.2, box: [0.25, 0.25, 0.75, 0.5] });
  const fb = p.element("facebox").style;
  check("and its box is drawn where the screen shows that face (mirrored)",
        Math.abs(parseFloat(fb.left) - (270 - 54)) < 1 && Math.abs(parseFloat(fb.width) - (540 + 108)) < 1,
        `left ${fb.left}, width ${fb.width}`);
  p.fire("resize");
  check("a turn of the screen takes the box away until the next answer (the part shown changed)",
        p.element("facebox").hidden === true, p.element("facebox").hidden);

  // ---- a hidden page (minimised, another tab) sends nothing, and shown again starts afresh
  p = page();
  await settle();
  const shy = p.sockets[0];
  p.say(shy, { type: "hello" });
  p.advance(200);
  p.say(shy, { type: "result", frame: 1, state: "checked_in", name: "Ana", time: "08:59" });
  p.setHidden(true);
  const before = shy.sent;
  p.advance(5000);
  check("a hidden page sends no frames (nobody would see whom it checks in)", shy.sent === before,
        `${before} then ${shy.sent}`);
  p.setHidden(false);
  check("shown again it looks for a face (the welcome before it was hidden is over)",
        p.stage.dataset.state === "searching", p.stage.dataset.state);
  p.advance(200);
  check("and sends frames again", shy.sent === before + 1, `${before} then ${shy.sent}`);

  // ---- no face box from before a lost connection comes back on a resize or a rotation
  p.say(shy, { type: "result", frame: shy.sent, state: "recognising", progress: 0.2, box: [0.2, 0.2, 0.5, 0.6] });
  check("a result's box is drawn", p.element("facebox").hidden === false, p.element("facebox").hidden);
  shy.onclose({ code: 1006 });
  p.fire("resize");
  check("after a lost connection a resize draws no old box", p.element("facebox").hidden === true,
        p.element("facebox").hidden);
  check("nor tells people to stand an arm's length away (nothing they can do)", p.element("help").hidden === true,
        p.element("help").hidden);

  // ---- a notice takes the box away too: no answers come meanwhile, and it stayed on the last face
  p = page();
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.advance(200);
  p.say(p.sockets[0], { type: "result", frame: 1, state: "recognising", progress: 0.2, box: [0.2, 0.2, 0.5, 0.6] });
  p.advance(200);
  p.say(p.sockets[0], { type: "error", frame: 2, code: "unavailable", message: "the index is being rebuilt" });
  check("'unavailable' hides the last face box and the help line",
        p.element("facebox").hidden === true && p.element("help").hidden === true,
        `box hidden ${p.element("facebox").hidden}, help hidden ${p.element("help").hidden}`);
  p.advance(3500);
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "already", name: "Ana Silva", time: "08:59" });
  check("'already checked in' greets by name in its title (someone taken for another notices)",
        p.text("banner-title") === "Hello again, Ana Silva" && p.element("help").hidden === false,
        `${p.text("banner-title")}, help hidden ${p.element("help").hidden}`);
  check("a short name's title keeps the title's size", p.element("banner-title").style.fontSize === ""
        && / named/.test(p.element("banner").className),
        `${p.element("banner-title").style.fontSize}, ${p.element("banner").className}`);

  // ---- a long name's title is set smaller (two lines at most, three upright: kiosk.css), so that the banner
  // stays below the face in the video (it took four lines and covered the lower face)
  const long = "Alexandra Konstantinopoulou-Smith";        // "Welcome, " and it: 42 characters
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "checked_in", name: long, time: "09:01" });
  check("a long name's welcome is set smaller, in proportion to its length (32 of 42 characters)",
        p.text("banner-title") === `Welcome, ${long}`
        && p.element("banner-title").style.fontSize === "calc(var(--title) * 0.76)",
        p.element("banner-title").style.fontSize);
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "already", name: `${long} ${long}`, time: "09:01" });
  check("and no smaller than 0.6 of it, however long",
        p.element("banner-title").style.fontSize === "calc(var(--title) * 0.60)", p.element("banner-title").style.fontSize);
  // where the lines cut a named title short it is set smaller, also again after a resize (a
  // welcome fitted upright, three lines, ended in "…" once the screen turned: two)
  const fitted = p.element("banner-title");
  let lines = 2;   // the style sheet's; the title's height is its lines of 40 px
  Object.defineProperty(fitted, "clientHeight", { get: () => 40 * lines, configurable: true });
  Object.defineProperty(fitted, "scrollHeight", { get: () => {
    const m = /\* (\d\.\d\d)/.exec(fitted.style.fontSize || "");
    return 40 * (m && Number(m[1]) < 0.5 ? 2 : 3);   // three lines down to 0.5 of the title's size, two below
  }, configurable: true });
  p.fire("resize");
  check("a resize fits a shown named title again",
        fitted.style.fontSize === "max(18px, calc(var(--title) * 0.45))", fitted.style.fontSize);
  lines = 3;
  p.fire("resize");
  check("and a resize that makes room sets it back to its size by length",
        fitted.style.fontSize === "calc(var(--title) * 0.60)", fitted.style.fontSize);
  delete fitted.scrollHeight; delete fitted.clientHeight; fitted.clientHeight = 800;
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "unknown" });
  check("a title without a name gets the title's size back", p.element("banner-title").style.fontSize === ""
        && !/ named/.test(p.element("banner").className),
        `${p.element("banner-title").style.fontSize}, ${p.element("banner").className}`);

  // ---- the kiosk's language: the banners speak the words its config brings (the kiosk's own
  // language, else the site's), names and times filled in, and the title names the kiosk in it
  p = page(0, null, { config: { language: "pt", text: catalog("pt") }, lang: "pt" });
  await settle();
  p.say(p.sockets[0], { type: "hello", kiosk: "Recepção", location: "", site: "main", language: "pt" });
  p.advance(200);
  p.say(p.sockets[0], { type: "result", frame: 1, state: "checked_in", name: "Ana Silva", time: "08:59", masked: true });
  check("in Portuguese a welcome greets the person by name, with the time as the server wrote it",
        p.text("banner-title") === "Olá, Ana Silva" && p.text("banner-detail") === "Entrada confirmada às 08:59",
        `${p.text("banner-title")} / ${p.text("banner-detail")}`);
  check("and the page's title is Portuguese too", p.context.document.title === "Recepção · Check-in MaskNet",
        p.context.document.title);
  p = page(0, null, { config: { language: "de", text: catalog("de") }, lang: "de" });
  await settle();
  const de = p.sockets[0];
  p.say(de, { type: "hello", language: "de" });
  p.advance(200);
  p.say(de, { type: "result", frame: de.sent, state: "unknown", masked: true });
  check("in German a masked stranger is told to lower the mask for a moment",
        p.text("banner-title") === "Nicht erkannt" && p.text("banner-detail") === catalog("de")["unknown.detail_masked"],
        `${p.text("banner-title")} / ${p.text("banner-detail")}`);
  for (const reason of ["too_dark", "several"]) {
    p.advance(4500);
    p.say(de, { type: "result", frame: de.sent, state: "adjust", reason: reason });
    p.say(de, { type: "result", frame: de.sent, state: "adjust", reason: reason });
  }
  check("and a prompt is in German", p.text("banner-title") === "Bitte eine Person nach der anderen",
        p.text("banner-title"));
  p.say(de, { type: "result", frame: de.sent, state: "adjust", reason: "toString" });
  p.say(de, { type: "result", frame: de.sent, state: "adjust", reason: "toString" });
  check("a reason the page has no words for asks to look at the camera (no prototype's name taken for one)",
        p.text("banner-title") === "Bitte schauen Sie in die Kamera", p.text("banner-title"));
  p.say(de, { type: "result", frame: de.sent, state: "already", name: "{time}", time: "09:00" });
  check("a name that reads like a placeholder is shown as it is", p.text("banner-title") === "Hallo erneut, {time}",
        p.text("banner-title"));
  // ---- the proxy's offline page (static/offline.html) speaks the language the kiosk last spoke: the page keeps it
  const kept = new Map();
  const local = { setItem: (k, v) => kept.set(k, String(v)), getItem: (k) => (kept.has(k) ? kept.get(k) : null) };
  page(0, null, { config: { language: "pt", text: catalog("pt") }, lang: "pt", localStorage: local });
  await settle();
  check("the kiosk page keeps its language for the offline page", kept.get("masknet.kiosk.language") === "pt",
        JSON.stringify([...kept]));
  const refused = { setItem() { throw new Error("QuotaExceededError"); } };
  const q = page(0, null, { localStorage: refused });
  await settle();
  check("and starts all the same where storage refuses it", q.sockets.length === 1, q.sockets.length);

  // ---- a welcome without its time (or its name): the catalog's words without it, in every language, never
  // "{time}", "undefined", "null" or a greeting's dangling comma (each catalog has them: test_kiosk_text.py)
  for (const code of ["en", "de", "es", "fr", "pt"]) {
    const words = catalog(code);
    const q = page(0, null, { config: { language: code, text: words }, lang: code });
    await settle();
    const ws = q.sockets[0];
    q.say(ws, { type: "hello", language: code });
    const shown = [];
    const answers = [["checked_in", { name: "Ana Silva", time: null }, words["checked_in.title"].replace("{name}", "Ana Silva"),
                      words["checked_in.detail_no_time"]],
                     ["already", { name: "Ana Silva" }, words["already.title"].replace("{name}", "Ana Silva"),
                      words["already.detail_no_time"]],
                     ["checked_in", { name: "", time: "08:59" }, words["checked_in.title_no_name"],
                      words["checked_in.detail"].replace("{time}", "08:59")],
                     ["already", { name: null, time: " " }, words["already.title_no_name"], words["already.detail_no_time"]]];
    let right = true;
    for (const [state, fields, title, detail] of answers) {
      q.advance(4500);   // the last outcome's hold
      q.say(ws, Object.assign({ type: "result", frame: ws.sent, state: state, masked: false }, fields));
      shown.push(`${q.text("banner-title")} / ${q.text("banner-detail")}`);
      right = right && q.text("banner-title") === title && q.text("banner-detail") === detail;
    }
    q.say(ws, { type: "kiosk", kiosk: "", location: "", site: "main", language: code });
    shown.push(q.context.document.title);
    check(`in ${code} a welcome without its time or name reads as a sentence, without a placeholder`,
          right && q.context.document.title === words["page_title_no_kiosk"]
          && shown.every((said) => !/[{}]|undefined|null|, \/|, $/.test(said)), shown.join(" | "));
  }
  // the admin gives the kiosk another language: its socket says so, and the page reloads once nobody is greeted
  // (``languages``: what the "kiosk" messages say while someone English-speaking is welcomed)
  const relabelled = async (...languages) => {
    const q = page(0, null, { config: { language: "en", build: "b1" } });
    await settle();
    q.say(q.sockets[0], { type: "hello", build: "b1", language: "en" });
    q.advance(200);
    q.say(q.sockets[0], { type: "result", frame: 1, state: "checked_in", name: "Ana", time: "08:59" });
    for (const language of languages) {
      q.say(q.sockets[0], { type: "kiosk", kiosk: "Front door", location: "", site: "main", language: language });
    }
    return q;
  };
  p = await relabelled("fr");
  check("another language while someone is greeted: no reload yet", p.counts.reloads === 0, p.counts.reloads);
  p.advance(5000);
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "searching" });
  check("once nobody is: the page reloads in the new language", p.counts.reloads === 1, p.counts.reloads);
  p = await relabelled("fr", "en");
  p.advance(5000);
  p.say(p.sockets[0], { type: "result", frame: p.sockets[0].sent, state: "searching" });
  check("a language changed back before the reload reloads nothing", p.counts.reloads === 0, p.counts.reloads);

  // ---- the clock: the page's 00-23 hours, as the check-in times, also just after midnight
  p = page(0, null, { config: { time_zone: "UTC" }, date: Date.UTC(2026, 11, 4, 0, 5) });
  await settle();
  check("the clock reads 00:05 after midnight (not 24:05)", p.text("clock") === "00:05", p.text("clock"));
  check("the date reads as the attendance pages write a day", p.text("date") === "Friday 4 December", p.text("date"));
  // the page's other languages keep their own order and words (the parts put in English's order
  // read "Freitag 4 Dezember" and "金曜日 4 12")
  const otherPages = ["de", "ja", "ar-EG"].map((lang) =>
    page(0, null, { config: { time_zone: "UTC" }, date: Date.UTC(2026, 11, 4, 0, 5), lang: lang }));
  const otherDates = otherPages.map((q) => q.text("date"));
  check("in another language, the date as that language writes it",
        otherDates[0] === "Freitag, 4. Dezember" && otherDates[1] === "12月4日金曜日", JSON.stringify(otherDates));
  // the clock is a <time> (in a group named "Current time": a name on a plain div is not read out)
  // whose datetime says the minute in the kiosk's zone, in any page language (Arabic's own digits too)
  const stamps = [p, ...otherPages].map((q) => q.element("clock").dateTime);
  check("the clock's datetime is the kiosk's local minute, machine-readable",
        stamps.every((s) => s === "2026-12-04T00:05"), JSON.stringify(stamps));
  p = page(0, null, { config: { time_zone: "America/New_York" }, date: Date.UTC(2026, 11, 4, 0, 5) });
  check("in the kiosk's zone, the day before in New York",
        p.element("clock").dateTime === "2026-12-03T19:05" && p.text("clock") === "19:05",
        `${p.element("clock").dateTime}, ${p.text("clock")}`);

  // ---- camera access denied, then allowed in the browser's settings: no reload needed
  const permission = { state: "denied", onchange: null };
  p = page(0, "NotAllowedError", { permissions: { query: async () => permission } });
  await settle();
  await settle();
  check("a denied camera says so", p.stage.dataset.state === "camera_denied", p.stage.dataset.state);
  p.camera.error = null;
  permission.state = "granted";
  permission.onchange();
  await settle();
  await settle();
  check("allowed later, the camera starts by itself", p.camera.requests === 2 && p.stage.dataset.state !== "camera_denied",
        `${p.camera.requests} requests, ${p.stage.dataset.state}`);

  // ---- the server was upgraded under an open page: its hello names another build, and the page reloads
  p = page(0, null, { config: { build: "old" } });
  await settle();
  p.say(p.sockets[0], { type: "hello", build: "old" });
  check("the same build: no reload", p.counts.reloads === 0, p.counts.reloads);
  p.sockets[0].onclose({ code: 1006 });
  p.advance(20000);
  p.say(p.sockets[1], { type: "hello", build: "new" });
  check("a new build after a reconnect: the page reloads", p.counts.reloads === 1, p.counts.reloads);
  const justNow = Date.UTC(2026, 11, 4, 9, 0);
  const storage = { values: { "masknet-kiosk-reload": JSON.stringify({ step: "old>new", at: justNow - 60000 }) },
                    getItem(k) { return this.values[k] || null; }, setItem(k, v) { this.values[k] = v; } };
  p = page(0, null, { config: { build: "old" }, sessionStorage: storage, date: justNow });
  await settle();
  p.say(p.sockets[0], { type: "hello", build: "new" });
  check("not again a minute after the same reload brought the old page back (a node not yet upgraded)",
        p.counts.reloads === 0, p.counts.reloads);
  p = page(0, null, { config: { build: "old" }, sessionStorage: storage, date: justNow + 10 * 60000 });
  await settle();
  p.say(p.sockets[0], { type: "hello", build: "new" });
  check("but again 10 minutes later (the rolling restart has ended)", p.counts.reloads === 1, p.counts.reloads);

  // ---- a camera that freezes without ending its track: no frame of the frozen picture, the
  // welcome leaves the screen, the camera is started again
  p = page(0, null, { pictures: true });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.picture();
  p.advance(200);
  check("a new picture is sent", p.sockets[0].sent === 1, `sent ${p.sockets[0].sent}`);
  p.say(p.sockets[0], { type: "result", frame: 1, state: "checked_in", name: "Ana Silva", time: "08:59" });
  p.advance(500);
  check("the same picture is not sent twice", p.sockets[0].sent === 1, `sent ${p.sockets[0].sent}`);
  p.picture();
  p.advance(200);
  check("the next picture is", p.sockets[0].sent === 2, `sent ${p.sockets[0].sent}`);
  p.advance(4000);
  check("a camera quiet for under 5 s is not yet frozen", p.stage.dataset.state === "checked_in", p.stage.dataset.state);
  p.advance(1000);
  check("after 5 s without a new picture the page says the camera stopped (the welcome goes)",
        p.stage.dataset.state === "camera_frozen", p.stage.dataset.state);
  check("and stops it", p.camera.tracks[0].stopped, "track still running");
  check("without the 'stand an arm's length away' help", p.element("help").hidden === true, p.element("help").hidden);
  p.say(p.sockets[0], { type: "result", frame: 2, state: "checked_in", name: "Ana Silva", time: "08:59" });
  check("a late answer to a frame sent before does not replace the banner", p.stage.dataset.state === "camera_frozen",
        p.stage.dataset.state);
  p.advance(1100);
  await settle();
  check("then starts it again, the banner staying until it delivers a picture",
        p.camera.requests === 2 && p.stage.dataset.state === "camera_frozen",
        `${p.camera.requests} requests, ${p.stage.dataset.state}`);
  p.picture();
  p.advance(200);
  check("its first picture brings the page back, help and all",
        p.stage.dataset.state === "searching" && p.element("help").hidden === false,
        `${p.stage.dataset.state}, help hidden ${p.element("help").hidden}`);
  check("and frames of its new pictures go", p.sockets[0].sent === 3, `sent ${p.sockets[0].sent}`);
  p.setHidden(true);
  p.advance(10000);
  p.setHidden(false);
  p.advance(100);
  check("a page shown again after a while hidden (no pictures meanwhile) is not taken for a frozen camera",
        p.stage.dataset.state === "searching" && p.camera.requests === 2,
        `${p.stage.dataset.state}, ${p.camera.requests} requests`);

  /** Runs ``p`` for ``ms``, 100 ms a step; returns when the camera was asked for (ms from the start)
   * and every state that was not "camera_frozen" after ``from`` ms. ``each`` runs after each step. */
  async function watchCamera(p, ms, from, each = () => {}) {
    const asked = [], other = [];
    for (let t = 0; t < ms; t += 100) {
      const before = p.camera.requests;
      p.advance(100);
      await settle();
      if (p.camera.requests > before) asked.push(t);
      each(t);
      if (t > from && p.stage.dataset.state !== "camera_frozen") other.push(`${p.stage.dataset.state} at ${t}`);
    }
    return { asked, other, gaps: asked.slice(1).map((t, i) => t - asked[i]) };
  }
  const growing = (gaps) => gaps.length >= 3 && gaps.every((g, i) => i === 0 || g > gaps[i - 1]);

  // ---- a camera that stays frozen: the banner stays, and the restarts back off (1, 2, 4... s)
  p = page(0, null, { pictures: true });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.picture();
  let run = await watchCamera(p, 90000, 5500);
  check("a camera that stays frozen keeps 'The camera has stopped' on screen", !run.other.length,
        run.other.slice(0, 3).join(", "));
  check("and is started again less and less often", growing(run.gaps), run.gaps.join(", "));
  // (its one frame went unanswered: the page gave the socket up and opened others meanwhile)
  p.say(p.sockets[p.sockets.length - 1], { type: "hello" });
  check("nor a lost connection nor a new socket's hello hides it", p.sockets.length > 1
        && p.stage.dataset.state === "camera_frozen", `${p.sockets.length} sockets, ${p.stage.dataset.state}`);

  // ---- restarted cameras that never start playing (play() waits for a first picture) are still restarted
  p = page(0, null, { pictures: true });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.picture();
  p.element("camera").play = () => new Promise(() => {});
  run = await watchCamera(p, 60000, 5500);
  check("a restarted camera whose play() never settles is started again, backing off", growing(run.gaps),
        run.gaps.join(", "));

  // ---- a flaky camera: one picture after each start, then frozen again: still backing off
  p = page(0, null, { pictures: true });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.picture();
  let seen = 0;
  run = await watchCamera(p, 120000, 1e9, () => {
    if (p.camera.requests > seen) { seen = p.camera.requests; p.picture(); }
  });
  check("a camera that gives one picture after each start and freezes again is started again less and less often",
        growing(run.gaps), run.gaps.join(", "));

  // ---- a restart that first fails (the camera busy), then works: the frozen banner, over a shown video
  p = page(0, null, { pictures: true });
  await settle();
  p.say(p.sockets[0], { type: "hello" });
  p.picture();
  p.camera.error = "NotReadableError";
  p.advance(5100);                    // frozen
  p.advance(1100);
  await settle();
  check("a restart that fails says why", p.stage.dataset.state === "camera_busy", p.stage.dataset.state);
  p.camera.error = null;
  p.advance(5100);
  await settle();
  await settle();
  check("the next one that works shows the frozen banner again, the video shown, until a picture comes",
        p.stage.dataset.state === "camera_frozen" && !/no-camera/.test(p.stage.className),
        `${p.stage.dataset.state}, ${p.stage.className}`);
  p.advance(1000);                     // (its unanswered frame cost it the socket: the page reconnects)
  p.say(p.sockets[p.sockets.length - 1], { type: "hello" });
  p.picture();
  check("which brings the page back", p.stage.dataset.state === "searching", p.stage.dataset.state);

  // ---- a time zone the browser does not know: the browser's own, and the page works
  let started = "";
  try {
    p = page(0, null, { config: { time_zone: "Mars/Olympus" } });
    await settle();
    started = p.sockets.length === 1 && p.stage.dataset.state === "connecting" && /\d\d:\d\d/.test(p.text("clock"))
      ? "" : `${p.sockets.length} sockets, ${p.stage.dataset.state}, clock ${p.text("clock")}`;
  } catch (e) {
    started = String(e);
  }
  check("a time zone unknown to the browser does not stop the page", !started, started);

  done();
}
main().catch((e) => { console.error(e); process.exit(2); });
