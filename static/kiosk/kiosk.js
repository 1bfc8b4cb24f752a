/* MaskNet kiosk page: camera -> JPEG frames over one WebSocket -> one banner per state.
 *
 * - One frame in flight, at most MAX_FPS frames a second, never queued in the browser: a frame is
 *   captured only when the previous one has been answered and the socket's send buffer is empty.
 *   On a slow network (its round trip longer than the time between frames) a frame or two more go
 *   before the answer, so that a kiosk on Wi-Fi or a VPN gets as many answers as one on the LAN:
 *   see inFlightAllowed().
 * - Frames are the part of the camera image the screen shows (all of it when their shapes match),
 *   scaled to fit 640x480 (480x640 when upright), JPEG quality 0.8, sent as binary.
 * - The socket reconnects by itself with exponential backoff (0.5 s doubling to 15 s, jittered).
 * - The server answers each frame with {type: "result", state, reason, box, masked, name, time,
 *   progress}; see recognition/consumers.py. Outcomes stay on screen for a few seconds.
 * - Its words come in its config (text: the kiosk's language's, recognition/kiosk_text/*.json): the page
 *   has none of its own and fetches none. A "hello" or "kiosk" message naming another language (the
 *   admin chose another for this kiosk, or the site's default changed) reloads it, as a new build does.
 * Plain JavaScript, no build step, no third-party code.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("kiosk-config").textContent);
  const TEXT = config.text || {};
  // the proxy's offline page (static/offline.html, offline.js) speaks the language this kiosk spoke last: it
  // cannot ask the server, which is down when it shows
  try { window.localStorage.setItem("masknet.kiosk.language", config.language || "en"); } catch (e) { /* storage off */ }
  const PLACEHOLDER = /\{(\w+)\}/g;
  const known = (key) => Object.prototype.hasOwnProperty.call(TEXT, key);
  // a value that says nothing: absent, null or blank (a welcome without its time, a greeting without a name)
  function blank(values, name) {
    const value = values && Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
    return value === undefined || value === null || String(value).trim() === "";
  }
  // the words of ``key`` in the page's language, each {placeholder} filled from ``values`` in one pass
  // (a name such as "{time}" stays as it is); a key the catalog lacks shows as itself, never "undefined".
  // A placeholder without a value takes the catalog's "<key>_no_<placeholder>", the same words without it
  // ("Checked in" for "Checked in at {time}", "Willkommen" for "Willkommen, {name}"; every catalog has
  // one for each: tests/recognition/test_kiosk_text.py): a screen never shows "{time}", "undefined" or
  // "null", nor a greeting's dangling comma; with none (a catalog being written), the value left out
  function say(key, values) {
    let words = known(key) ? String(TEXT[key]) : key;
    for (let gap; (gap = [...words.matchAll(PLACEHOLDER)].find((m) => blank(values, m[1])));) {
      key = key + "_no_" + gap[1];
      if (!known(key)) break;
      words = String(TEXT[key]);
    }
    return words.replace(PLACEHOLDER, (all, name) => (blank(values, name) ? "" : String(values[name])));
  }
  const MAX_FPS = config.max_fps || 8;
  const MIN_INTERVAL_MS = 1000 / MAX_FPS;
  const STALL_MS = 5000;          // an unanswered frame is given up after this long
  const MAX_IN_FLIGHT = 3;        // frames sent and not answered yet, at most (one on a quick network)
  const RTT_SAMPLES = 8;          // the network's round trip is judged on this many recent answers
  // a socket silent this long while its frames go unanswered is dead, closed or not (a frame sent at
  // the second stall is answered at once, "dropped", by a server that is only slow: a second for that)
  const SILENT_MS = 2 * STALL_MS + 1000;
  const OUTCOME_HOLD_MS = 4000;   // checked in / already / unknown stay at least this long
  const NOTICE_HOLD_MS = 3000;    // "temporarily unavailable" / "updating": no flicker with the frames between
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const STATUS_TIMEOUT_MS = 5000; // a /kiosk/status call unanswered this long counts as "offline"
  const CAMERA_FROZEN_MS = 5000;  // a camera with no new picture this long has frozen: started again
  const CAMERA_STEADY_MS = 30000; // ... and one that has given pictures this long since is well again
  // a title that names someone is set smaller the longer it is (at most two lines, kiosk.css): a long
  // name's welcome took four lines and covered the lower face in the video, on a landscape screen too
  const TITLE_FULL_CHARS = 32;    // "Hello again, " and a name of up to 19 characters: full size
  const TITLE_MIN_SCALE = 0.6;    // ... and no smaller than this by length alone
  // where the screen's shape leaves fewer characters a line than that assumes (a 60-character name
  // on a 1920x1080 wall screen ended in "…"), smaller still until it fits, down to this (and 18 px);
  // a longer one ends in "…"
  const TITLE_FLOOR_SCALE = 0.4;

  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const video = $("camera");
  const facebox = $("facebox");
  const banner = $("banner");
  const title = $("banner-title");
  const detail = $("banner-detail");
  const icon = $("banner-icon");
  const chipMask = $("chip-mask");
  const progressBar = $("progress-bar");
  const help = $("help");          // "stand an arm's length away…": only while the camera works
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { alpha: false });

  // ---------------------------------------------------------------- icons (inline SVG paths)
  const ICONS = {
    face: '<path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-3.5 7.5a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3zm7 0a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3zM12 18c-2.3 0-4.2-1.3-5-3.2h10c-.8 1.9-2.7 3.2-5 3.2z"/>',
    scan: '<path d="M4 8V5a1 1 0 0 1 1-1h3V2H5a3 3 0 0 0-3 3v3h2zm16 0h2V5a3 3 0 0 0-3-3h-3v2h3a1 1 0 0 1 1 1v3zM4 16H2v3a3 3 0 0 0 3 3h3v-2H5a1 1 0 0 1-1-1v-3zm16 0v3a1 1 0 0 1-1 1h-3v2h3a3 3 0 0 0 3-3v-3h-2zM12 7a3 3 0 1 1 0 6 3 3 0 0 1 0-6zm-5 10c0-2.2 2.2-3.5 5-3.5s5 1.3 5 3.5v.5H7V17z"/>',
    check: '<path d="M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z"/>',
    again: '<path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-1 14.5-4-4 1.4-1.4 2.6 2.6 5.6-5.6L18 9.5z"/>',
    cross: '<path d="M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z"/>',
    warn: '<path d="M1 21h22L12 2 1 21zm12-3h-2v-2h2v2zm0-4h-2v-4h2v4z"/>',
    closer: '<path d="M12 4a8 8 0 1 0 0 16 8 8 0 0 0 0-16zm0 2a6 6 0 1 1 0 12 6 6 0 0 1 0-12zm-1 2v3H8v2h3v3h2v-3h3v-2h-3V8h-2z"/>',
    light: '<path d="M12 7a5 5 0 1 0 0 10 5 5 0 0 0 0-10zM2 13h3v-2H2v2zm17 0h3v-2h-3v2zM11 2v3h2V2h-2zm0 17v3h2v-3h-2zM5.6 4.2 4.2 5.6l2.1 2.1 1.4-1.4-2.1-2.1zm12.1 12.1-1.4 1.4 2.1 2.1 1.4-1.4-2.1-2.1zM19.8 5.6l-1.4-1.4-2.1 2.1 1.4 1.4 2.1-2.1zM7.7 17.7l-1.4-1.4-2.1 2.1 1.4 1.4 2.1-2.1z"/>',
    still: '<path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm-2 14H8V8h2v8zm6 0h-2V8h2v8z"/>',
    camera: '<path d="M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.8L21 17.2V6.5zM3.3 2 2 3.3 4.7 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.2 0 .4-.1.5-.2l3.2 3.2 1.3-1.3L3.3 2z"/>',
    lock: '<path d="M18 8h-1V6a5 5 0 0 0-10 0v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zM9 6a3 3 0 0 1 6 0v2H9V6zm3 11a2 2 0 1 1 0-4 2 2 0 0 1 0 4z"/>',
    sync: '<path d="M12 4V1L8 5l4 4V6a6 6 0 0 1 6 6c0 1-.25 2-.7 2.8l1.46 1.46A8 8 0 0 0 12 4zm0 14a6 6 0 0 1-6-6c0-1 .25-2 .7-2.8L5.24 7.74A8 8 0 0 0 12 20v3l4-4-4-4v3z"/>',
    people: '<path d="M16 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm-8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13zm8 0c-.3 0-.6 0-1 .1 1.2.8 2 2 2 3.4V19h6v-2.5c0-2.3-4.7-3.5-7-3.5z"/>',
    plug: '<path d="M16 7V3h-2v4h-4V3H8v4a2 2 0 0 0-2 2v5.5L9.5 18v3h5v-3l3.5-3.5V9a2 2 0 0 0-2-2z"/>',
  };

  // ---------------------------------------------------------------- what each state looks like
  // the icon of each reason to adjust (its words: "adjust.<reason>.title" and ".detail")
  const ADJUST = { too_small: "closer", partial: "scan", too_dark: "light", too_bright: "light", blurry: "still",
                   pose: "face", several: "people" };

  // a state's banner: its tone, icon and how it behaves; its words are the catalog's "<state>.title"
  // and "<state>.detail" (say()) unless it says its own
  function view(state, msg) {
    const v = look(state, msg || {});
    const key = v.key || state;
    return Object.assign({ title: say(key + ".title", v.values), detail: say(key + ".detail", v.values) }, v);
  }

  function look(state, msg) {
    const values = { name: msg.name || "", time: msg.time };
    switch (state) {
      case "starting": return { tone: "idle", icon: "scan" };
      case "connecting": return { tone: "idle", icon: "scan" };
      case "searching": return { tone: "idle", icon: "face" };
      case "preparing": return { tone: "idle", icon: "scan", spinner: true };
      case "adjust": {
        const known = Object.prototype.hasOwnProperty.call(ADJUST, msg.reason);
        return { tone: "warn", icon: known ? ADJUST[msg.reason] : "face", key: known ? "adjust." + msg.reason : "adjust" };
      }
      case "recognising": return { tone: "work", icon: "scan", progress: true };
      case "checked_in": return { tone: "ok", icon: "check", values: values, mask: msg.masked, named: true };
      // the name in the title, as a welcome's: someone taken for another person notices
      case "already": return { tone: "info", icon: "again", values: values, mask: msg.masked, named: true };
      // one line of title: two (with the detail's) reached over the chin of a face at arm's length on a wall screen.
      // A masked face is missed several times as often as a bare one (docs/accuracy.md) and the vote
      // goes on after "unknown": a face shown bare for a moment is matched bare. A second try, not
      // a rule: the help line's "masks are fine" holds for most people
      case "unknown": return { tone: "bad", icon: "cross",
        detail: say(msg.masked ? "unknown.detail_masked" : "unknown.detail") };
      case "camera_denied": return { tone: "bad", icon: "lock", noCamera: true };
      case "no_camera": return { tone: "bad", icon: "camera", noCamera: true };
      // the video stays shown: a browser presents (and says it has) a new picture only of a shown video
      case "camera_frozen": return { tone: "bad", icon: "camera", noHelp: true };
      case "camera_busy": return { tone: "bad", icon: "camera", noCamera: true };
      case "insecure": return { tone: "bad", icon: "lock", noCamera: true };
      case "replaced": return { tone: "bad", icon: "plug", noCamera: true };
      case "unpaired": return { tone: "bad", icon: "plug", noCamera: true };
      case "unavailable": return { tone: "warn", icon: "sync", spinner: true, noHelp: true };
      case "updating": return { tone: "warn", icon: "sync", spinner: true, noHelp: true };
      case "connection_lost": return { tone: "warn", icon: "sync", spinner: true, noHelp: true };
      case "not_ready": return { tone: "bad", icon: "warn", noHelp: true };
      case "out_of_order": return { tone: "bad", icon: "warn", noHelp: true };
      default: return { tone: "idle", icon: "face", title: say("searching.title"), detail: "" };
    }
  }

  // ---------------------------------------------------------------- rendering
  let shown = null;          // {state, key, until}
  let namedTitle = null;     // the title on screen where it names someone: sized again on a resize
  let lastResult = null;

  function render(state, msg, force) {
    const now = performance.now();
    const v = view(state, msg);
    // the banner's words: a bare face's "not recognised" right after a masked one's (someone else
    // stepped in while it was held) must not keep the mask hint
    const key = state + "|" + v.title + "|" + v.detail;
    if (!force && shown && shown.until > now && shown.key !== key && !isOutcome(state)) {
      return;  // an outcome is still on screen: let people read it
    }
    stage.dataset.state = state;
    stage.dataset.reason = (msg && msg.reason) || "";
    stage.className = "stage tone-" + v.tone + (v.noCamera ? " no-camera" : "");
    banner.className = "banner tone-" + v.tone + (v.named ? " named" : "");
    if (!shown || shown.key !== key) {
      title.textContent = v.title;
      namedTitle = v.named ? v.title : null;
      sizeTitle();
      detail.textContent = v.detail;
      icon.innerHTML = '<svg viewBox="0 0 24 24" fill="currentColor">' + (ICONS[v.icon] || "") + "</svg>";
      shown = { state: state, key: key, until: isOutcome(state) ? now + OUTCOME_HOLD_MS : 0 };
    }
    // a notice is held while it keeps coming back (say every frame that needs the database)
    if (isNotice(state)) shown.until = now + NOTICE_HOLD_MS;
    chipMask.hidden = !v.mask;
    icon.classList.toggle("spinning", !!v.spinner);
    progressBar.style.width = v.progress ? Math.round(100 * Math.max(0.08, (msg && msg.progress) || 0)) + "%" : "0";
    // no face box over a camera problem or a notice (no answers come meanwhile: it stayed where the
    // last face was), nor "stand an arm's length away" help: nothing the person in front can do
    if (v.noCamera || v.noHelp) facebox.hidden = true;
    if (help) help.hidden = !!(v.noCamera || v.noHelp);
  }

  // the font size of a title that names someone: the title's own (var(--title)) up to
  // TITLE_FULL_CHARS characters, smaller in proportion beyond (two lines hold about as many
  // characters on any screen: the size and the banner's width both follow the screen)
  function titleSize(text) {
    const scale = Math.max(TITLE_MIN_SCALE, Math.min(1, TITLE_FULL_CHARS / text.length));
    return scale < 1 ? "calc(var(--title) * " + scale.toFixed(2) + ")" : "";
  }

  // the title's size: a named one's by its length, then smaller where the lines cut it short
  function sizeTitle() {
    title.style.fontSize = namedTitle ? titleSize(namedTitle) : "";
    if (namedTitle) fitTitle(namedTitle);
  }

  // a named title that the style sheet cuts short (more lines than it keeps) is set smaller, a step
  // at a time, until it fits or reaches TITLE_FLOOR_SCALE (never under 18 px, read from a step away,
  // unless its size by length already was)
  function fitTitle(text) {
    if (typeof title.scrollHeight !== "number" || !title.clientHeight) return;   // not laid out
    let scale = Math.max(TITLE_MIN_SCALE, Math.min(1, TITLE_FULL_CHARS / text.length));
    // the 18 px floor never makes a title larger than its size by length (a small base font)
    const style = typeof getComputedStyle === "function" ? getComputedStyle(title) : null;
    const floor = Math.min(18, (style && parseFloat(style.fontSize)) || 18);
    while (title.scrollHeight > title.clientHeight + 1 && scale > TITLE_FLOOR_SCALE + 1e-9) {
      scale = Math.max(TITLE_FLOOR_SCALE, scale - 0.05);
      title.style.fontSize = "max(" + floor + "px, calc(var(--title) * " + scale.toFixed(2) + "))";
    }
  }

  // what the banner says while nothing is in front of the camera (or nothing answered yet)
  function idle() {
    return preparing ? "preparing" : "searching";
  }

  function isOutcome(state) {
    return state === "checked_in" || state === "already" || state === "unknown";
  }

  function isNotice(state) {
    return state === "unavailable" || state === "updating";
  }

  // The part of the camera's picture the screen shows: the video fills the stage (object-fit:
  // cover), so a camera of another shape is cut at its sides (a 16:9 camera on a 9:16 screen shows
  // its middle third). Frames are that part alone: nobody is analysed, checked in or
  // taken for a second person where the screen does not show them.
  function shownPart() {
    const vw = video.videoWidth, vh = video.videoHeight;
    const sw = stage.clientWidth || vw, sh = stage.clientHeight || vh;
    const cover = Math.max(sw / vw, sh / vh);
    const w = Math.min(vw, Math.round(sw / cover)), h = Math.min(vh, Math.round(sh / cover));
    return { x: Math.round((vw - w) / 2), y: Math.round((vh - h) / 2), w: w, h: h };
  }

  function drawBox(box) {
    if (!box || !video.videoWidth) { facebox.hidden = true; return; }
    // the box is in fractions of the frame, the part of the picture the stage shows, mirrored
    const sw = stage.clientWidth, sh = stage.clientHeight;
    const x1 = (1 - box[2]) * sw, x2 = (1 - box[0]) * sw;
    const y1 = box[1] * sh, y2 = box[3] * sh;
    // the detector's box is tight: pad it a little, and keep it on the screen
    const padX = (x2 - x1) * 0.1, padY = (y2 - y1) * 0.12;
    const left = Math.max(6, x1 - padX), top = Math.max(6, y1 - padY * 1.4);
    const right = Math.min(sw - 6, x2 + padX), bottom = Math.min(sh - 6, y2 + padY * 0.6);
    facebox.style.left = left + "px";
    facebox.style.top = top + "px";
    facebox.style.width = Math.max(0, right - left) + "px";
    facebox.style.height = Math.max(0, bottom - top) + "px";
    facebox.hidden = false;
  }

  // ---------------------------------------------------------------- clock
  // a zone this browser does not know (its time zone data older than the server's, "Europe/Kyiv"
  // in an old browser) throws, which would stop the whole page: the browser's own zone then
  function dateFormat(options) {
    try {
      return new Intl.DateTimeFormat(PAGE_LANG, Object.assign({ timeZone: config.time_zone || undefined }, options));
    } catch (e) {
      return new Intl.DateTimeFormat(PAGE_LANG, options);
    }
  }
  // in the page's language, not the browser's, and 00-23 as the server writes check-in times
  // ("hour12: false" gives en-US "24:05" after midnight; some languages write "08.59")
  const PAGE_LANG = (document.documentElement && document.documentElement.lang) || "en";
  const timeFmt = dateFormat({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const dateFmt = dateFormat({ weekday: "long", day: "numeric", month: "long" });
  // "Friday 4 December", as the attendance pages write a day (en-US's own order, "Friday, December 4",
  // stood beside staff pages writing "Friday 4 December 2026")
  function dateText(now) {
    // English alone: other languages keep their own order and words ("Freitag, 4. Dezember", not
    // "Freitag 4 Dezember"; Japanese "12月4日金曜日", not "金曜日 4 12")
    if (!/^en(-|$)/i.test(PAGE_LANG)) return dateFmt.format(now);
    const parts = {};
    for (const part of dateFmt.formatToParts(now)) parts[part.type] = part.value;
    return parts.weekday && parts.day && parts.month ? parts.weekday + " " + parts.day + " " + parts.month : dateFmt.format(now);
  }
  // the clock's datetime attribute, the same minute in machine-readable form ("2026-12-04T00:05", the
  // kiosk's zone): whatever the page's language writes, Latin digits and the 00-23 hours
  const stampFmt = dateFormat({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
                                hourCycle: "h23", numberingSystem: "latn" });
  function stamp(now) {
    const parts = {};
    for (const part of stampFmt.formatToParts(now)) parts[part.type] = part.value;
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
  }
  function tickClock() {
    const now = new Date();
    $("clock").textContent = timeFmt.format(now);
    $("clock").dateTime = stamp(now);
    $("date").textContent = dateText(now);
  }
  tickClock();
  setInterval(tickClock, 1000);
  // the device cookie lasts a year and each answer of /kiosk/status renews it: a kiosk left open
  // for longer than that (it reloads itself only after a server upgrade) stays paired
  setInterval(() => { fetch(config.status_url, { credentials: "same-origin", cache: "no-store" }).catch(() => {}); },
              24 * 3600 * 1000);

  // ---------------------------------------------------------------- socket
  let ws = null;
  let helloSeen = false;
  let preparing = false;     // the server's models are still loading ("hello" said ready: false) until its first answer
  let attempt = 0;
  let flight = new Map();    // frames sent on this socket and not answered yet: number -> when sent
  let netRtt = [];           // recent answers' latency less the time the server held the frame (ms)
  let engineMs = [];         // ... and the engine's time on them (ms)
  let sent = 0;              // frames sent on this socket: the server numbers its answers the same way
  let encoding = false;      // a captured frame is being encoded (toBlob is asynchronous), not yet sent
  let lastSend = 0;
  let waitingSince = 0;      // when the first frame sent since this socket's last message went (0: none)
  let stopped = false;       // unpaired or replaced: no more reconnects, and no camera
  let replaced = false;      // a newer socket of this kiosk took over (another screen or tab)
  let cameraReady = false;
  let framesAnswered = 0;
  let unavailableSeen = false;  // the server said its database is away: say so, not "connection lost"
  let outage = null;         // what lost() showed while the socket is down: a camera back meanwhile shows it too
  let failures = 0;          // frames answered in a row with an error the page has no words for
  const FAILURES_SHOWN = 5;  // ... shown as "not working" from this many on (one is a glitch)
  let newBuild = null;       // the server serves a newer page (an upgrade): reload once nobody is greeted
  let newLanguage = null;    // ... or this kiosk speaks another language now: the same

  // The page reloads itself when the server's "hello" names another build of it than it was loaded
  // as, or its "hello" or "kiosk" another language, once nobody's outcome is on screen. Should the reload bring the same old page back (a web
  // node not yet upgraded in a rolling restart, a cache in between), it tries again 10 minutes
  // later, not in a loop, and not never.
  const RELOAD_AGAIN_MS = 10 * 60 * 1000;
  function reloadIfNewer() {
    if ((!newBuild && !newLanguage) || stage.dataset.state !== "searching") return;
    const key = "masknet-kiosk-reload";
    const step = config.build + ">" + (newBuild || config.build) + (newLanguage ? " " + config.language + ">" + newLanguage : "");
    let tried = null;
    try { tried = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { /* none: reload */ }
    if (tried && tried.step === step && Date.now() - tried.at < RELOAD_AGAIN_MS) return;
    try { sessionStorage.setItem(key, JSON.stringify({ step: step, at: Date.now() })); } catch (e) { /* best effort */ }
    location.reload();
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + location.host + config.ws_path;
  }

  function connect() {
    if (stopped) return;
    helloSeen = false;
    flight = new Map();
    netRtt = [];               // another socket may take another way: measured again
    engineMs = [];
    sent = 0;
    waitingSince = 0;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    // the backoff resets only on "hello": a server that accepts and then closes at once (its
    // database away: "unavailable") must not be hammered by instant reconnects
    ws.onmessage = (ev) => onMessage(ev.data);
    ws.onclose = (ev) => onClose(ev);
    ws.onerror = () => { /* onclose follows */ };
  }

  // An answer frees its own frame only: after a stall (an unanswered frame given up after STALL_MS)
  // the late answer to the older frame must not let two frames queue up. A result also says how long
  // the server held the frame (server_ms): the rest of its latency is the network's round trip.
  function answered(msg) {
    if (typeof msg.frame !== "number") { flight.clear(); return; }
    const at = flight.get(msg.frame);
    if (at === undefined) return;   // given up, or sent on an earlier socket
    flight.delete(msg.frame);
    if (msg.type === "result" && typeof msg.server_ms === "number") {
      // never below 0 (a clock's steps): no round trip would make it keep no frame in flight at all
      netRtt = netRtt.concat([Math.max(0, performance.now() - at - msg.server_ms)]).slice(-RTT_SAMPLES);
      engineMs = engineMs.concat([msg.ms || 0]).slice(-RTT_SAMPLES);
    }
  }

  // How many frames may be in flight, and how far apart they go. One while the network's round trip
  // (the shortest of the recent ones: jitter and retransmissions only lengthen it) is shorter than the
  // time between frames; else one more per such interval that fits in it, at most MAX_IN_FLIGHT,
  // sent no faster than the server's engine analyses them: they arrive at the server about as it
  // is done with the one before, which keeps only the newest waiting (an older one is answered
  // "dropped", never queued). One frame in flight at 300 ms gave 2.5 answers a second and a masked
  // face, whose vote needs 4 frames, its welcome after 2 s (bench/kiosk.py --rtt; docs/kiosk.md).
  // A server that does not say server_ms gets one frame in flight.
  function inFlightAllowed() {
    if (!netRtt.length) return { frames: 1, pace: MIN_INTERVAL_MS };
    const engine = engineMs.slice().sort((a, b) => a - b)[engineMs.length >> 1];
    const pace = Math.max(MIN_INTERVAL_MS, engine);
    return { frames: Math.min(MAX_IN_FLIGHT, 1 + Math.floor(Math.min.apply(null, netRtt) / pace)), pace: pace };
  }

  // the kiosk's name and location as the server has them now: renamed in the admin while the page
  // was open, or while it was away (said again by every "hello")
  function showKiosk(msg) {
    if (typeof msg.kiosk !== "string") return;
    document.getElementById("kiosk-name").textContent = msg.kiosk;
    const where = document.getElementById("kiosk-location");
    where.textContent = msg.location || "";
    where.hidden = !msg.location;
    document.title = say("page_title", { kiosk: msg.kiosk });
  }

  // what the server serves this page as now, from a "hello" or "kiosk" message: a new build (an
  // upgrade) or the kiosk's language changed (in the admin, or the site's default at a restart)
  function servedNow(msg) {
    if (msg.build && config.build && msg.build !== config.build) newBuild = msg.build;
    if (typeof msg.language === "string" && config.language) {
      newLanguage = msg.language !== config.language ? msg.language : null;
    }
  }

  function onMessage(data) {
    waitingSince = 0;          // the socket is alive, whatever it says
    if (typeof data !== "string") return;
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    switch (msg.type) {
      case "kiosk":
        showKiosk(msg);
        servedNow(msg);
        reloadIfNewer();
        break;
      case "hello":
        showKiosk(msg);
        helloSeen = true;
        attempt = 0;
        failures = 0;              // a new socket: errors before it say nothing about this one
        outage = null;
        delete stage.dataset.connection;
        preparing = msg.ready === false;
        if (cameraReady && !awaitingPicture) render(idle(), {}, true);
        servedNow(msg);
        reloadIfNewer();
        break;
      case "result": {
        answered(msg);
        preparing = false;
        unavailableSeen = false;
        failures = 0;
        framesAnswered += 1;
        stage.dataset.frames = String(framesAnswered);
        // the answer to a frame sent before the camera went (or froze): the camera problem stays on screen
        if (!cameraReady || awaitingPicture) break;
        const previous = lastResult;
        lastResult = msg;
        // a prompt ("hold still", "too dark"...) is shown after two such frames in a row, no flicker;
        // the reasons need not agree (in poor light "too dark" and "blurred" alternate): the latest.
        // A prompt on screen gives way to another reason only when that one comes twice in a row,
        // and to "recognising" / "looking for a face" only after two such answers in a row (an
        // overexposed face passes the gate every other frame: the banner flickered 18 times in 10 s);
        // an outcome (welcome, not recognised) at once
        const showing = stage.dataset.state === "adjust" ? stage.dataset.reason : null;
        const twice = previous && previous.state === "adjust";
        const passing = msg.state === "recognising" || msg.state === "searching";
        const steady = msg.state !== "adjust"
          ? !(showing && passing && twice)
          : twice && (!showing || showing === msg.reason || previous.reason === msg.reason);
        if (steady) render(msg.state, msg);
        drawBox(msg.box);
        reloadIfNewer();
        break;
      }
      case "dropped":
        answered(msg);
        break;
      case "error":
        answered(msg);
        preparing = false;
        if (msg.code === "unavailable") unavailableSeen = true;
        if (!["models_missing", "unavailable", "updating", "rate_limited"].includes(msg.code)) failures += 1;
        if (!cameraReady || awaitingPicture) break;   // a camera problem stays on screen: it comes first
        if (msg.code === "models_missing") render("not_ready", msg, true);
        else if (msg.code === "unavailable") render("unavailable", msg, true);
        else if (msg.code === "updating") render("updating", msg, true);
        else if (failures >= FAILURES_SHOWN) render("out_of_order", msg, true);
        break;
      case "revoked":
        stopped = true;
        break;
      case "replaced":
        replaced = true;
        break;
    }
  }

  function onClose(ev) {
    const opened = helloSeen;
    ws = null;
    flight.clear();
    helloSeen = false;         // a camera back before the next "hello" must not say "looking for a face"
    facebox.hidden = true;
    lastResult = null;         // nor may a resize draw the last face's box again
    // a newer socket of this kiosk (another tab or screen with its cookie): reconnecting would only
    // close that one in turn
    if (replaced || ev.code === 4409) { stopped = true; render("replaced", {}, true); stopCamera(); return; }
    if (stopped || ev.code === 4403) { stopped = true; render("unpaired", {}, true); stopCamera(); return; }
    // a refused handshake (e.g. revoked while offline) looks like any network failure: ask the server
    // (a server that never answers it must not stop the reconnects: given up after a few seconds)
    if (!opened) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), STATUS_TIMEOUT_MS);
      fetch(config.status_url, { credentials: "same-origin", cache: "no-store", signal: abort.signal })
        .then((r) => {
          if (r.status === 401 || r.status === 403) { stopped = true; render("unpaired", {}, true); stopCamera(); }
          else lost();
        })
        .catch(lost)
        .finally(() => clearTimeout(timer));
    } else {
      lost();
    }
  }

  function lost() {
    stage.dataset.connection = "lost";
    // camera problems stay on screen: they come first
    outage = unavailableSeen ? "unavailable" : "connection_lost";
    if (cameraReady && !awaitingPicture) render(outage, {}, true);
    unavailableSeen = false;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    attempt += 1;
    const delay = base * (0.8 + Math.random() * 0.4);
    setTimeout(connect, delay);
  }

  // ---------------------------------------------------------------- frames
  function pump() {
    const now = performance.now();
    for (const [frame, at] of flight) if (now - at > STALL_MS) flight.delete(frame);   // lost answer: try again
    // no close comes from a connection that died silently (Wi-Fi dropped, a NAT or proxy forgot it):
    // give this socket up as if it had closed, or the last banner stays and frames go nowhere
    if (ws && helloSeen && waitingSince && now - waitingSince > SILENT_MS) {
      const dead = ws;
      dead.onmessage = dead.onclose = dead.onerror = null;
      dead.close();
      onClose({ code: 1006 });
    }
    if (picturesSeen && cameraReady && !document.hidden && now - lastPictureAt > CAMERA_FROZEN_MS) cameraFrozen();
    // a hidden page (minimised, another tab) sends nothing: nobody would see whom it checks in
    const allowed = inFlightAllowed();
    if (!encoding && flight.size < allowed.frames && cameraReady && !document.hidden && ws
        && ws.readyState === WebSocket.OPEN && helloSeen && ws.bufferedAmount === 0
        && now - lastSend >= (flight.size ? allowed.pace : MIN_INTERVAL_MS) && video.readyState >= 2
        && (!picturesSeen || pictures !== sentPicture)) {
      sendFrame(now);
    }
    setTimeout(pump, 30);
  }

  function sendFrame(now) {
    if (!video.videoWidth || !video.videoHeight) return;
    const part = shownPart();
    const vw = part.w, vh = part.h;
    // a camera held upright (a tablet on a stand) gets the box turned too: fitting 720x1280 into
    // 640x480 left its faces a quarter smaller than a landscape camera's ("come closer" at arm's length)
    const long = Math.max(config.max_width || 640, config.max_height || 480);
    const short = Math.min(config.max_width || 640, config.max_height || 480);
    const [boxW, boxH] = vh > vw ? [short, long] : [long, short];
    const scale = Math.min(1, boxW / vw, boxH / vh);
    const w = Math.round(vw * scale), h = Math.round(vh * scale);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    ctx.drawImage(video, part.x, part.y, vw, vh, 0, 0, w, h);
    sentPicture = pictures;
    encoding = true;
    lastSend = now;
    canvas.toBlob((blob) => {
      encoding = false;
      if (!blob || !ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(blob);
      sent += 1;
      flight.set(sent, performance.now());
      if (!waitingSince) waitingSince = performance.now();
    }, "image/jpeg", config.jpeg_quality || 0.8);
  }

  // ---------------------------------------------------------------- camera
  let stream = null;

  // A camera can freeze without ending its track (a driver or USB fault): the video then shows its
  // last picture for good, and frames of it would keep the last person's welcome on screen. Where
  // the browser says when a new picture arrives (requestVideoFrameCallback), a frame is sent only
  // of a new picture, and none for CAMERA_FROZEN_MS means the camera froze: the page says so and
  // starts the camera again.
  // The banner stays until the restarted camera delivers a picture, and a camera that stays frozen
  // (or freezes again within CAMERA_STEADY_MS) is started again after 1 s, then 2, 4... at most
  // every 30 s.
  const picturesSeen = typeof video.requestVideoFrameCallback === "function";
  let pictures = 0;          // pictures the camera delivered (counted where picturesSeen)
  let sentPicture = -1;      // the picture the last frame sent was drawn from
  let lastPictureAt = 0;
  let watch = 0;             // the current stream's watch (an earlier stream's callback ends its own)
  let awaitingPicture = false;  // started again after a freeze: no picture from it yet
  let frozenRestarts = 0;    // restarts since the camera was last steady
  let steadySince = 0;       // when the restarted camera's first picture came

  function watchPictures() {
    const mine = ++watch;
    const onPicture = () => {
      if (mine !== watch) return;
      pictures += 1;
      lastPictureAt = performance.now();
      if (awaitingPicture) {
        awaitingPicture = false;
        steadySince = lastPictureAt;
        if (cameraReady) render(helloSeen ? idle() : outage || "connecting", {}, true);
      } else if (frozenRestarts && lastPictureAt - steadySince >= CAMERA_STEADY_MS) {
        frozenRestarts = 0;
      }
      video.requestVideoFrameCallback(onPicture);
    };
    video.requestVideoFrameCallback(onPicture);
  }

  function cameraFrozen() {
    stopCamera();
    lastResult = null;
    facebox.hidden = true;
    render("camera_frozen", {}, true);
    awaitingPicture = true;
    setTimeout(startCamera, Math.min(30000, 1000 * Math.pow(2, frozenRestarts)));
    frozenRestarts += 1;
  }

  function stopCamera() {
    cameraReady = false;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
  }

  // Once stopped (revoked or replaced) the camera stays off: no retry starts it again, and a stream
  // granted after the stop is stopped at once.
  async function startCamera() {
    if (stopped) return;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      render("insecure", {}, true);
      return;
    }
    let granted;
    try {
      granted = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 15 } },
      });
    } catch (err) {
      if (stopped) return;     // the stop's message stays on screen
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
        render("camera_denied", {}, true);
        whenAllowed();   // the permission changed in the browser's settings starts it, as a reload would
        return;
      }
      render(name === "NotReadableError" || name === "AbortError" ? "camera_busy" : "no_camera", {}, true);
      setTimeout(startCamera, 5000);
      return;
    }
    if (stopped) { granted.getTracks().forEach((t) => t.stop()); return; }
    stream = granted;
    video.srcObject = stream;
    stream.getVideoTracks().forEach((t) => t.addEventListener("ended", () => {
      if (stopped) return;
      cameraReady = false;
      render("no_camera", {}, true);
      setTimeout(startCamera, 3000);
    }));
    // play() settles once the camera's first picture is there: a camera frozen from the start
    // would keep it waiting for good, so where pictures are counted it is waited for only so long
    let playing;
    try { playing = Promise.resolve(video.play()).catch(() => { /* autoplay of a muted video is allowed */ }); }
    catch (e) { playing = Promise.resolve(); }
    await (picturesSeen ? Promise.race([playing, new Promise((r) => setTimeout(r, CAMERA_FROZEN_MS))]) : playing);
    if (stopped) { stopCamera(); return; }
    lastPictureAt = performance.now();
    if (picturesSeen) watchPictures();
    cameraReady = true;
    // after a freeze the banner says so until a picture comes (again, over a failed try's banner,
    // which hid the video: a hidden video presents no pictures)
    render(awaitingPicture ? "camera_frozen" : helloSeen ? idle() : outage || "connecting", {}, true);
    keepAwake();
  }

  function whenAllowed() {
    const permissions = navigator.permissions;
    if (!permissions || typeof permissions.query !== "function") return;
    permissions.query({ name: "camera" }).then((status) => {
      status.onchange = () => {
        if (status.state !== "granted" || stopped || cameraReady) return;
        status.onchange = null;
        startCamera();
      };
    }).catch(() => { /* "camera" is not a permission name this browser knows: a reload then */ });
  }

  async function keepAwake() {
    try {
      if ("wakeLock" in navigator) {
        await navigator.wakeLock.request("screen");   // released when hidden: see visibilitychange
      }
    } catch (e) { /* not allowed here: the screen saver settings decide */ }
  }

  // a box is in fractions of the part of the picture the screen showed when its frame was sent: a
  // resize or a turn of the screen changes that part, so the box waits for the next answer (redrawn,
  // it stood tall and narrow where no face was, after a turn from landscape to portrait)
  // it: a welcome's title fitted to the screen before a turn (or the window's going full screen) is
  // fitted again, or one that fitted upright (three lines) ended in "…" once landscape (two)
  window.addEventListener("resize", () => { facebox.hidden = true; if (namedTitle) sizeTitle(); });
  document.addEventListener("visibilitychange", () => {
    // no pictures are presented while hidden: the camera is judged again from now
    if (!document.hidden) lastPictureAt = performance.now();
    if (document.hidden || !cameraReady) return;
    keepAwake();
    // shown again: nothing was sent meanwhile, so the next frame's answer says what stands now
    if (helloSeen && !outage && !awaitingPicture) { lastResult = null; facebox.hidden = true; render(idle(), {}, true); }
  });

  render("starting", {}, true);
  startCamera();
  connect();
  pump();
})();
