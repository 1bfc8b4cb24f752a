/* Drives static/enrollment/capture.js (the admin's webcam capture) in Node with a scripted clock,
 * camera and server: checks pause while the page is hidden, a refused session stops the page and
 * its camera, a burst before the first frame does not wedge the page, leaving turns the camera off, the
 * person erased meanwhile ("person_gone") stops the page and its camera, the burst's outcome has its own
 * place (shown at once, kept while the live checks go on, refusals summed up by reason when no photo was
 * good; "the best of 5 photos" saved, or why it was not), "getting ready" while the server loads its models,
 * screen readers hear the live checks' line once it has settled, not at every check, and the face's box
 * is drawn where the face is in the mirrored preview, also from a camera the server turned upright; an
 * unplugged camera (its track ended) stops the checks and says so; mask on or off is said only of a face read
 * well enough to tell; a camera the browser refuses is said by its kind, with what to do; a server that does
 * not answer is said so, not as the browser's "Failed to fetch".
 * Run by tests/test_page_scripts.py; prints one line per check, exits 1 on a failure.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const { clock, element, settle, checker } = require("./harness");

const SOURCE = fs.readFileSync(path.join(__dirname, "..", "..", "static", "enrollment", "capture.js"), "utf8");

/** A button whose listeners stay (the harness's elements forget theirs once fired, as ``{once: true}``). */
function button(extra) {
  const listeners = {};
  return element(Object.assign({
    addEventListener(type, fn) { (listeners[type] = listeners[type] || []).push(fn); },
    dispatch(type, event) { (listeners[type] || []).forEach((fn) => fn(event || {})); },
  }, extra));
}

/** A fresh capture page; ``server.status`` is what the check endpoint answers; ``server.replies``: the
 * JSON answered to a URL ("/check", "/save"), instead of ``server.json`` or the default. */
function page(dataset, getUserMedia) {
  const time = clock();
  const server = { status: 200, posts: [], replies: {} };
  const track = { stopped: false, stop() { this.stopped = true; }, listeners: {},
                  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); },
                  dispatch(type) { (this.listeners[type] || []).forEach((fn) => fn({})); } };
  const windowListeners = {};
  const video = element({ videoWidth: 0, videoHeight: 0 });
  const elements = {
    "mn-capture": element({
      // UTC+05:45: no browser's here
      dataset: Object.assign({ check: "/check", save: "/save", timeZone: "Asia/Kathmandu" }, dataset),
      querySelector: () => ({ value: "csrf-token" }),
    }),
    "mn-video": video,
    "mn-burst": button({ disabled: true, focused: 0, focus() { this.focused += 1; } }),   // as the template renders it
    "mn-outcome": element({ hidden: true, scrolled: 0, scrollIntoView() { this.scrolled += 1; } }),
    "mn-results": element({ lines: [], prepend(li) { this.lines.unshift(li.textContent); } }),
  };
  // the live region under the live line: each text written to it is read out
  const said = element({ heard: [] });
  Object.defineProperty(said, "textContent", { get() { return this.heard[this.heard.length - 1] || ""; },
                                               set(v) { this.heard.push(v); } });
  elements["mn-feedback-said"] = said;
  const context = {
    console, JSON, Math, Promise, Object, Array, String, Number, Error,
    // a browser whose language is American English: its default time style has 12 hours ("8:59:03 PM")
    Date: class extends Date {
      toLocaleTimeString(locale, options) { return super.toLocaleTimeString(locale || "en-US", options); }
    },
    setTimeout: time.setTimeout, setInterval: time.setInterval, clearInterval: time.clearInterval,
    FormData: class { constructor() { this.parts = []; } append(k, v) { if (v === null) throw new TypeError("not a Blob"); this.parts.push(k); } },
    fetch: async (url) => {
      server.posts.push(url);
      if (server.down) throw new TypeError("Failed to fetch");   // as a browser without an answer
      if (server.hold && server.hold[url]) await server.hold[url];   // an answer still on its way
      const json = server.replies[url] || server.json || (url === "/save" ? { saved: [1], refused: [] } : { ok: true, box: null });
      return {
        status: server.status, redirected: false, ok: server.status < 400,
        headers: { get: () => (server.status === 200 || server.json ? "application/json" : "text/html") },
        json: async () => json,
      };
    },
    navigator: { mediaDevices: { getUserMedia: getUserMedia || (async () => ({ getTracks: () => [track] })) } },
    location: { reload() {} },
    document: {
      hidden: false,
      getElementById: (id) => elements[id] || (elements[id] = element()),
      createElement: () => element({
        getContext: () => ({ drawImage() {} }),
        // a 0x0 canvas gives no picture, as in browsers
        toBlob(cb) { const blob = this.width && this.height ? { size: 1000 } : null; time.setTimeout(() => cb(blob), 5); },
      }),
    },
  };
  context.window = { addEventListener(type, fn) { (windowListeners[type] = windowListeners[type] || []).push(fn); } };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return {
    server, track, video, context, time,
    button: elements["mn-burst"],
    feedback: elements["mn-feedback"],
    outcome: elements["mn-outcome"],
    results: elements["mn-results"],
    liveBox: elements["mn-live-box"],
    said,
    /** Advance the clock in small steps, letting promises settle between them. */
    async run(ms) {
      for (let t = 0; t < ms; t += 50) { time.advance(50); await settle(); }
    },
    fire(type, event) { (windowListeners[type] || []).forEach((fn) => fn(event || {})); },
  };
}

const { check, done } = checker();

async function main() {
  // ---- before the first frame: no checks, and the burst cannot wedge the page
  let p = page();
  await settle();
  check("the burst button stays off until the camera gives a frame", p.button.disabled === true,
        `disabled ${p.button.disabled}`);
  await p.run(1000);
  check("no checks are sent before the first frame", p.server.posts.length === 0, `${p.server.posts.length} posts`);
  p.button.dispatch("click");                    // pressed anyway (e.g. enabled by an older page version)
  await p.run(3000);
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  check("the button comes on with the first frame", p.button.disabled === false, `disabled ${p.button.disabled}`);
  await p.run(1000);
  check("live checks run once frames come", p.server.posts.filter((u) => u === "/check").length >= 1,
        `${p.server.posts.length} posts`);

  // ---- the server without its face models: the burst shows the server's own message
  p.server.status = 503;
  p.server.json = { ok: false, code: "models_missing", message: "The face models are not installed on the server." };
  p.button.dispatch("click");
  await p.run(3000);
  check("a burst answered 503 shows the server's message", /not installed/.test(p.outcome.textContent),
        p.outcome.textContent);
  check("and the page is usable again", p.button.disabled === false, `disabled ${p.button.disabled}`);
  check("with the keyboard focus back on the button (disabled while it ran, it had lost it)",
        p.button.focused === 1, `focused ${p.button.focused}`);
  p.server.status = 200;
  p.server.json = null;

  // ---- the burst's outcome: shown at once under the button, kept while the live checks go on
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  await p.run(600);
  p.server.replies["/check"] = { ok: false, code: "no_face", message: "No face found in the photo.", box: null };
  const noFace = { name: "webcam.jpg", code: "no_face", message: "No face found in the photo." };
  p.server.replies["/save"] = { saved: [], refused: [noFace, noFace, noFace, noFace, noFace], warnings: [], frames: 5, good: 0 };
  p.button.dispatch("click");
  await p.run(100);
  check("during the burst the page says it is taking photos, where the outcome will be",
        p.outcome.hidden === false && /^Taking photos…/.test(p.outcome.textContent) && p.outcome.scrolled >= 1,
        `hidden ${p.outcome.hidden}, "${p.outcome.textContent}", scrolled ${p.outcome.scrolled}`);
  await p.run(3000);
  check("refusals are summed up by reason, not repeated for each photo",
        p.outcome.textContent === "No photo was good enough — try again.\n5 photos refused: no face found in the photo." &&
        /bad/.test(p.outcome.className), `"${p.outcome.textContent}" (${p.outcome.className})`);
  check("the outcome is scrolled into view", p.outcome.scrolled >= 3, `scrolled ${p.outcome.scrolled} times`);
  await p.run(3000);
  check("and stays while the live checks go on", /^No photo was good enough/.test(p.outcome.textContent) &&
        /No face found: look at the camera/.test(p.feedback.textContent), `"${p.outcome.textContent}", "${p.feedback.textContent}"`);
  // the server keeps the best good frame alone (three passed here): the other frames' refusals do not matter
  p.server.replies["/save"] = { saved: [7], refused: [], frames: 5, good: 3,
                                warnings: ["This face also matches Mei Lin (#5, score 0.71)."] };
  p.button.dispatch("click");
  await p.run(3000);
  check("a burst with a photo saved says that the best of its photos was, with the look-alike warning under it",
        p.outcome.textContent === "Saved the best of 5 photos. The index is being rebuilt." +
        "\nThis face also matches Mei Lin (#5, score 0.71)." &&
        /ok warn/.test(p.outcome.className), `"${p.outcome.textContent}" (${p.outcome.className})`);
  check("each line starts with the burst's time in 00-23 hours, as the other staff pages write times",
        p.results.lines.every((line) => /^\d\d:\d\d:\d\d · /.test(line)), JSON.stringify(p.results.lines));
  const siteTime = (ms) => new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "Asia/Kathmandu" });
  check("each line's time is the site's (TIME_ZONE), not the browser's",
        p.results.lines.every((line) => [siteTime(Date.now()), siteTime(Date.now() - 60000)].includes(line.slice(0, 5))),
        JSON.stringify(p.results.lines));
  check("each burst leaves a line under the button, newest first",
        p.results.lines.length === 2 && p.results.lines[0].endsWith(" · Saved the best of 5 photos") &&
        p.results.lines[1].endsWith(" · 5 photos refused: no face found in the photo."), JSON.stringify(p.results.lines));
  const again = { name: "webcam.jpg", code: "duplicate", message: "This photo is already enrolled for this person." };
  p.server.replies["/save"] = { saved: [], refused: [again], warnings: [], frames: 5, good: 5 };
  p.button.dispatch("click");
  await p.run(3000);
  check("a burst whose best photo the person has already says so, not 'not good enough'",
        p.outcome.textContent === "Nothing new to save: this person already has this photo. If the picture above does " +
        "not move, the camera has frozen: reconnect it.\nThe best of 5 photos was not saved: this photo is already " +
        "enrolled for this person." && /warn/.test(p.outcome.className),
        `"${p.outcome.textContent}" (${p.outcome.className})`);
  const elsewhere = { name: "webcam.jpg", code: "enrolled_elsewhere", message: "This photo is already enrolled for another person." };
  p.server.replies["/save"] = { saved: [], refused: [elsewhere], warnings: [], frames: 5, good: 2 };
  p.button.dispatch("click");
  await p.run(3000);
  check("a burst whose best photo passed the checks but was refused says why that photo was, not 'not good enough'",
        p.outcome.textContent === "The best of 5 photos was not saved: this photo is already enrolled for another person." &&
        /bad/.test(p.outcome.className) && !/warn/.test(p.outcome.className),
        `"${p.outcome.textContent}" (${p.outcome.className})`);
  check("and its line under the button says the same",
        p.results.lines[0].endsWith(" · The best of 5 photos was not saved: this photo is already enrolled for another person."),
        JSON.stringify(p.results.lines));

  // ---- hidden: no checks
  p.context.document.hidden = true;
  await p.run(600);                                  // a check already on its way finishes
  let before = p.server.posts.length;
  await p.run(3000);
  check("no checks while the page is hidden", p.server.posts.length === before,
        `${p.server.posts.length - before} posts`);
  p.context.document.hidden = false;

  // ---- the session ends: one refused check stops everything
  p.server.status = 403;
  await p.run(1000);
  before = p.server.posts.length;
  await p.run(5000);
  check("after a refused check no more requests are sent", p.server.posts.length === before,
        `${p.server.posts.length - before} more posts`);
  check("and the camera is turned off", p.track.stopped === true, "still on");
  check("and the page says to reload", /reload the page/.test(p.feedback.textContent), p.feedback.textContent);

  // ---- the camera unplugged: its track ends, and the page says so instead of "No face found" twice a
  // second over a black picture (a helper's review in Chromium)
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  await p.run(600);
  p.track.dispatch("ended");
  before = p.server.posts.length;
  await p.run(3000);
  check("a camera whose track ended stops the checks and the burst, and says to reconnect it",
        p.server.posts.length === before && p.button.disabled === true &&
        /camera stopped.*reconnect it/.test(p.feedback.textContent) && p.said.textContent === p.feedback.textContent,
        `${p.server.posts.length - before} posts, disabled ${p.button.disabled}, "${p.feedback.textContent}"`);

  // ---- leaving the page turns the camera off
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  await p.run(600);
  p.fire("pagehide");
  before = p.server.posts.length;
  await p.run(3000);
  check("leaving the page turns the camera off and stops the checks",
        p.track.stopped === true && p.server.posts.length === before,
        `stopped ${p.track.stopped}, ${p.server.posts.length - before} posts`);

  // ---- the person erased meanwhile: the checks stop (an HTML 404 twice a second, forever, before)
  const gone = { ok: false, code: "person_gone", message: "This person no longer exists (erased meanwhile)." };
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  await p.run(600);
  p.server.status = 404;
  p.server.json = gone;
  await p.run(1000);
  before = p.server.posts.length;
  await p.run(5000);
  check("a person_gone answer to a check stops the checks", p.server.posts.length === before,
        `${p.server.posts.length - before} more posts`);
  check("and turns the camera and the burst button off", p.track.stopped === true && p.button.disabled === true,
        `stopped ${p.track.stopped}, disabled ${p.button.disabled}`);
  check("and says that the person no longer exists", /no longer exists.*camera is off/.test(p.feedback.textContent),
        p.feedback.textContent);

  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  p.context.document.hidden = true;                  // no checks: the burst meets the answer first
  p.server.status = 404;
  p.server.json = gone;
  p.button.dispatch("click");
  await p.run(3000);
  check("so does a person_gone answer to a burst",
        p.track.stopped === true && p.button.disabled === true && /no longer exists/.test(p.feedback.textContent),
        `stopped ${p.track.stopped}, disabled ${p.button.disabled}, "${p.feedback.textContent}"`);

  // ---- the server still loading its face models: the page says so until the first check's answer
  p = page({ engineReady: "0" });
  let loaded;
  p.server.hold = { "/check": new Promise((res) => { loaded = res; }) };
  p.server.replies["/check"] = { ok: true, box: null, masked: false };
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  await p.run(3000);                                 // the first check waits for the models
  check("while the server loads its face checks the page says it is getting ready, not 'look at it'",
        /Getting ready: the server is loading its face checks/.test(p.feedback.textContent), p.feedback.textContent);
  loaded();
  await p.run(600);
  check("and the first check's answer replaces it", p.feedback.textContent === "Face found — good photo (mask off)",
        p.feedback.textContent);
  p = page({ engineReady: "1" });
  await settle();
  check("with the models loaded the page asks to look at the camera", p.feedback.textContent === "Camera on: look at it",
        p.feedback.textContent);

  // ---- screen readers: the live line changes twice a second; it is read out once it has settled
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  p.video.dispatch("loadeddata");
  check("the camera coming on is read out at once", p.said.heard.join(" | ") === "Camera on: look at it",
        JSON.stringify(p.said.heard));
  const tooFar = { ok: false, code: "too_small", message: "Too far", box: null };
  p.server.replies["/check"] = tooFar;
  await p.run(10000);                                // 20 checks, the same answer
  check("twenty checks with the same answer: read out once (the live line shows each)",
        p.said.heard.join(" | ") === "Camera on: look at it | Too far: come closer" &&
        p.feedback.textContent === "Too far: come closer", JSON.stringify(p.said.heard));
  const good = { ok: true, box: null, masked: false };
  for (let i = 0; i < 10; i++) {                     // flipping at every check as the person moves
    p.server.replies["/check"] = i % 2 ? tooFar : good;
    await p.run(500);
  }
  check("an answer that flips at every check is not read out at every check", p.said.heard.length === 2,
        JSON.stringify(p.said.heard));
  p.server.replies["/check"] = good;
  await p.run(3000);
  check("and once it settles it is", p.said.textContent === "Face found — good photo (mask off)" &&
        p.said.heard.length === 3, JSON.stringify(p.said.heard));
  for (let i = 0; i < 6; i++) {                      // two checks each: settled, but a change each second
    p.server.replies["/check"] = i % 2 ? good : tooFar;
    await p.run(1000);
  }
  check("a line read out at most every 2 seconds however often the answer settles anew", p.said.heard.length <= 6,
        JSON.stringify(p.said.heard));
  p.server.status = 403;
  await p.run(1000);
  check("a stopped page is read out at once", /reload the page/.test(p.said.textContent), JSON.stringify(p.said.heard));

  // ---- the live box: on the mirrored preview, turned back where the server turned the frame upright
  // (found by a helper's review: a camera mounted upside down had its box drawn on the other side)
  const boxed = async (answer) => {
    const q = page();
    await settle();
    q.video.videoWidth = 640; q.video.videoHeight = 480;
    q.server.replies["/check"] = Object.assign({ ok: true, masked: false }, answer);
    q.video.dispatch("loadeddata");
    await q.run(600);
    const st = q.liveBox.style;
    return [st.left, st.top, st.width, st.height].map((v) => Math.round(parseFloat(v) * 10) / 10).join(" ");
  };
  // a 640x480 frame whose face is at x 50-150, y 100-200: mirrored, its left edge is at 100 - 150/6.4 %
  const upright = await boxed({ box: [50, 100, 150, 200], width: 640, height: 480, turned: 0 });
  check("an upright frame's box is drawn mirrored", upright === "76.6 20.8 15.6 20.8", upright);
  const flipped = await boxed({ box: [490, 280, 590, 380], width: 640, height: 480, turned: 180 });
  check("a frame the server turned upside down has its box drawn where the face is in the preview",
        flipped === upright, flipped);
  const quarter = await boxed({ box: [100, 490, 200, 590], width: 480, height: 640, turned: 270 });
  check("and one it turned a quarter (its size the stored photo's, the preview's the other way)",
        quarter === upright, quarter);
  const old = await boxed({ box: [50, 100, 150, 200], width: 640, height: 480 });
  check("an answer without 'turned' is drawn as upright", old === upright, old);

  // ---- mask on or off is said only of a face read well enough to tell (a dark face was "mask on")
  const line = async (answer) => {
    const q = page();
    await settle();
    q.video.videoWidth = 640; q.video.videoHeight = 480;
    q.server.replies["/check"] = answer;
    q.video.dispatch("loadeddata");
    await q.run(600);
    return q.feedback.textContent;
  };
  const dark = await line({ ok: false, code: "too_dark", box: [50, 100, 150, 200], masked: true });
  check("a face too dark is not said to wear a mask", dark === "Too dark: add light in front of the face", dark);
  const far = await line({ ok: false, code: "too_small", box: [50, 100, 150, 200], masked: true });
  check("a face too far is", far === "Too far: come closer · mask on", far);

  // ---- a server that does not answer at all: said so, not the browser's "Failed to fetch"
  {
    const q = page();
    await settle();
    q.video.videoWidth = 640; q.video.videoHeight = 480;
    q.server.down = true;
    q.video.dispatch("loadeddata");
    await q.run(600);
    check("a check without an answer says the server does not answer",
          /^Could not check the frame: the server does not answer/.test(q.feedback.textContent), q.feedback.textContent);
    q.button.dispatch("click");
    await q.run(4000);
    check("and a burst's too", /^Saving failed: the server does not answer \(the network or the server is down\)$/
      .test(q.outcome.textContent), q.outcome.textContent);
  }

  // ---- a camera the browser refuses: what it means and what to do, not the browser's own words
  for (const [name, said] of [["NotAllowedError", /^Camera blocked: allow it for this site/],
                              ["NotFoundError", /^No camera found: connect one/],
                              ["NotReadableError", /^The camera is in use by another program/],
                              ["TypeError", /^Camera unavailable \(odd\): reload this page/]]) {
    const q = page({}, async () => { const e = new Error("odd"); e.name = name; throw e; });
    await settle();
    await q.run(100);
    const text = q.feedback.textContent;
    check(`a camera refused with ${name} says so`, said.test(text) && /uploaded on the person's page/.test(text), text);
  }

  // ---- a check on its way when the burst starts comes back refused: the burst stops there too
  p = page();
  await settle();
  p.video.videoWidth = 640; p.video.videoHeight = 480;
  let release;
  p.server.hold = { "/check": new Promise((res) => { release = res; }) };
  p.video.dispatch("loadeddata");
  await p.run(600);                                  // a check is posted; its answer is held back
  p.server.status = 403;
  p.button.dispatch("click");
  await p.run(400);                                  // the burst is taking its photos
  release();
  await p.run(4000);
  check("a burst does not go on to save once a refused check stopped the page",
        !p.server.posts.includes("/save") && p.track.stopped === true,
        `posts ${JSON.stringify(p.server.posts)}, stopped ${p.track.stopped}`);
  done();
}

main().catch((e) => { console.error(e); process.exit(2); });
