// Webcam capture for enrollment: live server-side checks of small frames, then a burst of
// full-resolution photos sent to photo_add (good ones saved, refusals listed with the reason).
(function () {
  "use strict";
  const root = document.getElementById("mn-capture");
  if (!root) return;
  const video = document.getElementById("mn-video");
  const feedback = document.getElementById("mn-feedback");
  const liveBox = document.getElementById("mn-live-box");
  const burstBtn = document.getElementById("mn-burst");
  const results = document.getElementById("mn-results");
  const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  const MESSAGES = {
    no_face: "No face found: look at the camera",
    too_small: "Too far: come closer",
    too_dark: "Too dark: add light in front of the face",
    too_bright: "Too bright",
    blurry: "Blurry: hold still",
    pose: "Look straight at the camera",
    several_faces: "Only one person in the picture, please",
  };
  let checking = false;
  let busy = false;

  function grab(maxSide, quality) {
    const w = video.videoWidth, h = video.videoHeight;
    const scale = Math.min(1, maxSide / Math.max(w, h));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob((b) => resolve({ blob: b, w: canvas.width, h: canvas.height }), "image/jpeg", quality));
  }
  function post(url, form) {
    return fetch(url, { method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
      .then((r) => r.json());
  }
  function say(text, ok) {
    feedback.textContent = text;
    feedback.className = "mn-feedback " + (ok ? "ok" : "bad");
  }
  function drawBox(r) {
    if (!r.box || !r.width) { liveBox.hidden = true; return; }
    const [x1, y1, x2, y2] = r.box;
    // the preview is mirrored (like a mirror), the frame is not
    liveBox.style.left = (100 * (1 - x2 / r.width)) + "%";
    liveBox.style.top = (100 * y1 / r.height) + "%";
    liveBox.style.width = (100 * (x2 - x1) / r.width) + "%";
    liveBox.style.height = (100 * (y2 - y1) / r.height) + "%";
    liveBox.className = "mn-box" + (r.ok ? " ok" : "");
    liveBox.hidden = false;
  }
  async function check() {
    if (checking || busy || !video.videoWidth) return;
    checking = true;
    try {
      const frame = await grab(640, 0.8);
      const form = new FormData();
      form.append("frame", frame.blob, "frame.jpg");
      const r = await post(root.dataset.check, form);
      drawBox(r);
      if (r.ok) say("Face found — good photo" + (r.masked ? " (mask on)" : " (mask off)"), true);
      else say((MESSAGES[r.code] || r.message) + (r.box ? (r.masked ? " · mask on" : " · mask off") : ""), false);
    } catch (e) {
      say("Could not check the frame: " + e, false);
    } finally {
      checking = false;
    }
  }
  async function burst() {
    busy = true;
    burstBtn.disabled = true;
    const form = new FormData();
    for (let i = 0; i < 5; i++) {
      const shot = await grab(1280, 0.92);
      form.append("photos", shot.blob, "webcam-" + Date.now() + "-" + i + ".jpg");
      await new Promise((res) => setTimeout(res, 300));
    }
    say("Saving…", true);
    try {
      const r = await post(root.dataset.save, form);
      const li = document.createElement("li");
      li.textContent = r.saved.length + " photo(s) saved" + (r.refused.length ? ", " + r.refused.length + " refused: " + r.refused.map((x) => x.message).join("; ") : "");
      results.prepend(li);
      say(r.saved.length ? "Saved. The index is being rebuilt." : "No photo was good enough — try again.", r.saved.length > 0);
    } catch (e) {
      say("Saving failed: " + e, false);
    } finally {
      busy = false;
      burstBtn.disabled = false;
    }
  }
  burstBtn.addEventListener("click", burst);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser cannot use the camera here (a secure https:// page is needed).", false);
    return;
  }
  navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" }, audio: false })
    .then((stream) => {
      video.srcObject = stream;
      burstBtn.disabled = false;
      say("Camera on: look at it", true);
      setInterval(check, 500);
    })
    .catch((e) => say("Camera unavailable: " + e.message, false));
})();
