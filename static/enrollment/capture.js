// Webcam capture for enrollment: live server-side checks of small frames, then a burst of
// full-resolution photos of which the server keeps the best that passes its checks (a burst counts
// about as one photo; when none passes, the refusals are summed up by reason). The page picks
// nothing itself: the server's checks decide. The burst's outcome has its own place under the
// button, which the live checks leave alone.
(function () {
  "use strict";
  const root = document.getElementById("mn-capture");
  if (!root) return;
  const video = document.getElementById("mn-video");
  const feedback = document.getElementById("mn-feedback");
  const feedbackSaid = document.getElementById("mn-feedback-said");   // what screen readers hear of it
  const liveBox = document.getElementById("mn-live-box");
  const burstBtn = document.getElementById("mn-burst");
  const outcome = document.getElementById("mn-outcome");   // the latest burst: under way, saved, refused
  const results = document.getElementById("mn-results");   // one line per burst, newest first
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  // the refusals whose face is read well enough to say whether it wears a mask
  const MASK_TOLD = new Set(["too_small", "partial", "pose", "several_faces"]);
  const MESSAGES = {
    no_face: "No face found: look at the camera",
    too_small: "Too far: come closer",
    partial: "Face cut off: move to the middle of the picture",
    too_dark: "Too dark: add light in front of the face",
    too_bright: "Too bright",
    blurry: "Blurry: hold still",
    pose: "Look straight at the camera",
    several_faces: "Only one person in the picture, please",
    unclear_face: "No clear face: look at the camera, eyes and brows uncovered",
  };
  // 00-23 hours in the page's language, as every other staff page and the kiosk write times (the
  // browser's own default wrote "8:59:03 PM" in an English browser)
  const PAGE_LANG = (document.documentElement && document.documentElement.lang) || "en";
  // in the site's time zone (TIME_ZONE), as the admin's lists write the photos' times, not the browser's
  function burstTime(date) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    try {
      return date.toLocaleTimeString(PAGE_LANG, Object.assign({ timeZone: root.dataset.timeZone || undefined }, options));
    } catch (e) {   // a zone this browser does not know: its own
      return date.toLocaleTimeString(PAGE_LANG, options);
    }
  }
  let checking = false;
  let busy = false;
  let stream = null;
  let timer = null;          // the live checks' interval
  let stopped = false;       // the session ended, the right was lost or the person erased: no more requests

  // a refusal of the session (logged out, expired) or of the right (403), or the person erased,
  // stops the page for good
  class Stopped extends Error {}

  function grab(maxSide, quality) {
    const w = video.videoWidth, h = video.videoHeight;
    const scale = Math.min(1, maxSide / Math.max(w, h));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob((b) => resolve({ blob: b, w: canvas.width, h: canvas.height }), "image/jpeg", quality));
  }
  async function post(url, form) {
    let r;
    try {
      r = await fetch(url, { method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRFToken": csrf } });
    } catch {
      // no answer at all: the browser's own words ("Failed to fetch", "Load failed") said nothing useful
      throw new Error("the server does not answer (the network or the server is down)");
    }
    if (r.status === 401 || r.status === 403 || r.redirected) {
      stop();
      throw new Stopped("Your session has ended or you may no longer add photos: reload the page.");
    }
    const type = r.headers.get("Content-Type") || "";
    if (!type.includes("application/json")) throw new Error("the server answered " + r.status);
    const body = await r.json();
    if (body && body.code === "person_gone") {   // erased meanwhile: asking again cannot help
      stop();
      throw new Stopped((body.message || "This person no longer exists.") + " The camera is off.");
    }
    return body;
  }
  function stop() {
    stopped = true;
    if (timer !== null) clearInterval(timer);
    timer = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    burstBtn.disabled = true;
  }
  // The live line changes with each check, twice a second, and may flip between two answers ("too far",
  // "good photo") as someone moves: written into a polite live region it was read out at every change.
  // Screen readers hear a check's line once it has come twice in a row, and at most every 2 s; what
  // does not come from a check (the camera on or unavailable, the page stopped) at once.
  const SETTLED = 2;            // checks in a row with the same line before it is read out
  const SAY_EVERY = 4;          // checks between two lines read out
  let said = null;              // the line last read out
  let heard = null;             // the checks' latest line, and how many checks in a row gave it
  let heardTimes = 0;
  let sinceSaid = SAY_EVERY;    // checks since a line was read out
  function announce(text) {
    said = text;
    sinceSaid = 0;
    if (feedbackSaid) feedbackSaid.textContent = text;
  }
  function show(text, ok) {
    feedback.textContent = text;
    feedback.className = "mn-feedback " + (ok ? "ok" : "bad");
  }
  function say(text, ok) {
    show(text, ok);
    heard = text;
    heardTimes = SETTLED;
    announce(text);
  }
  /** A check's line: shown at once, read out once it has settled. */
  function sayChecked(text, ok) {
    show(text, ok);
    sinceSaid += 1;
    heardTimes = text === heard ? heardTimes + 1 : 1;
    heard = text;
    if (heardTimes >= SETTLED && text !== said && sinceSaid >= SAY_EVERY) announce(text);
  }
  // the burst's outcome (one line each: what happened, what was saved, why the others were refused),
  // kept until the next burst, and scrolled into view
  // the first line, what happened, in bold as a whole (the style sheet's ::first-line bolded only
  // the first line on screen: a headline that wrapped was half bold)
  function tell(text, ok, warn) {
    const lines = text.split("\n");
    if (typeof outcome.append === "function" && typeof document.createElement === "function") {
      const head = document.createElement("strong");
      head.textContent = lines[0];
      outcome.textContent = "";
      outcome.append(head, lines.length > 1 ? "\n" + lines.slice(1).join("\n") : "");
    } else {
      outcome.textContent = text;
    }
    outcome.className = "mn-outcome " + (ok ? "ok" : "bad") + (warn ? " warn" : "");
    outcome.hidden = false;
    if (outcome.scrollIntoView) outcome.scrollIntoView({ block: "nearest" });
  }
  const photos = (n) => n + " photo" + (n === 1 ? "" : "s");
  const cap = (t) => t.charAt(0).toUpperCase() + t.slice(1);
  const low = (t) => t.charAt(0).toLowerCase() + t.slice(1);
  // one line per reason, not one per photo: "5 photos refused: no face found in the photo"
  function refusals(refused) {
    const counts = new Map();
    refused.map((x) => x.message || x.code || "").forEach((t) => counts.set(t, (counts.get(t) || 0) + 1));
    return [...counts].map(([t, n]) => photos(n) + " refused: " + low(t));
  }
  // the server's warnings name no file ("This face also matches …"): the burst's names tell the user nothing
  const warned = (warnings) => [...new Set(warnings.map(cap))];
  // The answer's box and size are the photo's as it would be stored: the frame as sent turned
  // r.turned degrees clockwise to stand upright (a camera mounted upside down or on its side). The
  // preview shows the frame as sent: the box turned back, in the frame's own size.
  const TURNED_BACK = {
    90: (x, y, w) => [y, w - x], 180: (x, y, w, h) => [w - x, h - y], 270: (x, y, w, h) => [h - y, x],
  };
  function frameBox(r) {
    const back = TURNED_BACK[r.turned];
    if (!back) return { box: r.box, width: r.width, height: r.height };
    const [ax, ay] = back(r.box[0], r.box[1], r.width, r.height);
    const [bx, by] = back(r.box[2], r.box[3], r.width, r.height);
    const quarter = r.turned !== 180;
    return { box: [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)],
             width: quarter ? r.height : r.width, height: quarter ? r.width : r.height };
  }
  function drawBox(r) {
    if (!r.box || !r.width) { liveBox.hidden = true; return; }
    const { box: [x1, y1, x2, y2], width, height } = frameBox(r);
    // the preview is mirrored (like a mirror), the frame is not
    liveBox.style.left = (100 * (1 - x2 / width)) + "%";
    liveBox.style.top = (100 * y1 / height) + "%";
    liveBox.style.width = (100 * (x2 - x1) / width) + "%";
    liveBox.style.height = (100 * (y2 - y1) / height) + "%";
    liveBox.className = "mn-box" + (r.ok ? " ok" : "");
    liveBox.hidden = false;
  }
  async function check() {
    if (checking || busy || stopped || document.hidden || !video.videoWidth) return;
    checking = true;
    try {
      const frame = await grab(640, 0.8);
      const form = new FormData();
      form.append("frame", frame.blob, "frame.jpg");
      const r = await post(root.dataset.check, form);
      drawBox(r);
      if (r.ok) sayChecked("Face found — good photo" + (r.masked ? " (mask on)" : " (mask off)"), true);
      // mask on or off only where the face was read well enough to tell: a face too dark, too bright or
      // blurred was called "mask on" without a mask (a review; the kiosk says it of a usable face alone)
      else sayChecked((MESSAGES[r.code] || r.message) + (r.box && MASK_TOLD.has(r.code) ? (r.masked ? " · mask on" : " · mask off") : ""), false);
    } catch (e) {
      if (e instanceof Stopped) say(e.message, false);
      else sayChecked("Could not check the frame: " + e.message, false);
    } finally {
      checking = false;
    }
  }
  async function burst() {
    if (busy || stopped) return;
    if (!video.videoWidth) { tell("The camera is not ready yet: one moment.", false); return; }
    busy = true;
    burstBtn.disabled = true;
    tell("Taking photos… hold still", true);
    try {
      const form = new FormData();
      let shots = 0;
      for (let i = 0; i < 5; i++) {
        if (stopped) { tell("The camera was turned off: nothing was saved.", false); return; }   // a refused check stopped the page
        const shot = await grab(1280, 0.92);
        if (shot.blob) {
          form.append("photos", shot.blob, "webcam-" + Date.now() + "-" + i + ".jpg");
          shots += 1;
        }
        await new Promise((res) => setTimeout(res, 300));
      }
      if (stopped) { tell("The camera was turned off: nothing was saved.", false); return; }
      if (!shots) { tell("The camera gave no picture: try again.", false); return; }
      tell("Checking " + photos(shots) + " and saving the best…", true);
      const r = await post(root.dataset.save, form);
      if (!Array.isArray(r.saved)) { tell(r.message || "Saving failed.", false); return; }  // e.g. models missing (503)
      const refused = r.refused || [];
      const frames = typeof r.frames === "number" ? r.frames : shots;
      const best = frames > 1 ? "the best of " + photos(frames) : "the photo";
      // a frame passed every check but storing it was refused (already this person's or someone
      // else's, storage failed): said of that frame, not summed up as a bad burst
      const chosenRefused = !r.saved.length && r.good > 0 && refused.length > 0;
      const lines = r.saved.length ? ["Saved " + best]
        : chosenRefused ? refused.map((x) => cap(best) + " was not saved: " + low(x.message || x.code || ""))
        : refusals(refused);
      const warnings = warned(r.warnings || []);   // e.g. the face also matches someone else
      // refused only as a photo this person has already (a still or frozen camera): not a bad
      // photo, and trying again gives the same answer
      const enrolled = !r.saved.length && refused.length > 0 && refused.every((x) => x.code === "duplicate");
      const text = r.saved.length ? [lines[0] + ". The index is being rebuilt."]
        : enrolled ? ["Nothing new to save: this person already has this photo. If the picture above does not move, the camera has frozen: reconnect it."].concat(lines)
        : chosenRefused ? lines
        : ["No photo was good enough — try again."].concat(lines);
      tell(text.concat(warnings).join("\n"), r.saved.length > 0, warnings.length > 0 || enrolled);
      const li = document.createElement("li");
      li.textContent = [burstTime(new Date())].concat(lines).join(" · ");   // a log of the bursts
      results.prepend(li);
    } catch (e) {
      if (e instanceof Stopped) say(e.message, false);   // the live line too: it stays, the camera is off
      tell(e instanceof Stopped ? e.message : "Saving failed: " + e.message, false);
    } finally {
      busy = false;
      burstBtn.disabled = stopped;
      // disabled while it ran, the button lost the keyboard focus: give it back for the next burst
      if (!stopped && typeof burstBtn.focus === "function") burstBtn.focus();
    }
  }
  burstBtn.addEventListener("click", burst);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser cannot use the camera here (a secure https:// page is needed).", false);
    return;
  }
  // leaving the page (or the browser putting it away) turns the camera off
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });  // back from the cache
  navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" }, audio: false })
    .then((s) => {
      if (stopped) { s.getTracks().forEach((t) => t.stop()); return; }
      stream = s;
      video.srcObject = s;
      // the camera unplugged (or taken by another program) ends its track: the checks would go on
      // sending a black picture, answered "No face found", and a burst five of them
      s.getTracks().forEach((t) => t.addEventListener("ended", () => {
        if (stopped) return;
        stop();
        say("The camera stopped (unplugged, or taken by another program): reconnect it, then reload this page.", false);
      }));
      // the burst waits for the first frame (a 0x0 canvas gives no picture)
      video.addEventListener("loadeddata", () => { if (!stopped) burstBtn.disabled = false; }, { once: true });
      // the server's face models still loading (a few seconds after it starts, as the kiosk's
      // "Getting ready…"): the first check waits for them, and says the outcome when it comes back
      say(root.dataset.engineReady === "0"
        ? "Camera on. Getting ready: the server is loading its face checks (a few seconds)…" : "Camera on: look at it", true);
      timer = setInterval(check, 500);   // paused while the page is hidden (check() returns)
    })
    .catch((e) => say(cameraProblem(e), false));
  /** What the camera's refusal means and what to do (the browser's own text, "Permission denied", said neither). */
  function cameraProblem(e) {
    const name = e && e.name;
    const upload = " Photos can also be uploaded on the person's page.";
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Camera blocked: allow it for this site in the browser's settings, then reload this page." + upload;
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera found: connect one, then reload this page." + upload;
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return "The camera is in use by another program (or failed): close that program, then reload this page." + upload;
    }
    return "Camera unavailable (" + ((e && (e.message || name)) || "unknown error") + "): reload this page to try again." + upload;
  }
})();
