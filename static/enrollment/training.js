// Live index-rebuild status on the enrollment admin pages: a WebSocket on the "training" group,
// falling back to polling status.json when the socket cannot be opened. What the page shows only
// moves forward: an answer or message older than what it already knows of a run is ignored, whatever
// order they arrive in, and the page asks again when a message shows that it missed something or the
// server says that messages were lost ("resync"). Screen readers hear a run's changes of state
// (queued, running, succeeded, failed) from a live region of their own, not each progress message.
(function () {
  "use strict";
  const root = document.getElementById("mn-status");
  if (!root) return;
  const runBox = root.querySelector(".mn-run");
  const bar = runBox.querySelector("progress");
  const stateEl = runBox.querySelector(".mn-run-state");
  const msgEl = runBox.querySelector(".mn-run-msg");
  const indexEl = root.querySelector(".mn-index");
  const saidEl = root.querySelector(".mn-run-said");   // a polite live region, visually hidden
  const STAGE = { queued: 0, running: 1, succeeded: 2, failed: 2 };
  const known = {};          // run id -> the latest state seen of that run
  let shown = null;          // the run in the bar
  let said = "";             // "id state" of the run last read out (or shown when the page opened)
  let indexShown = 0;        // the index version shown (0: none seen yet)
  let pollTimer = null;
  const asked = new Set();   // "id state" pairs the runs table was reloaded for (once each)
  let reloading = false;
  let reloadAgain = false;
  // a run the bar shows queued or running whose worker died with it (a server stopped mid-run) sends
  // nothing more, and the server takes such a run up again only when asked once its heartbeat is
  // stale (status.json does): a page that hears nothing of it for this long asks. A page opened in
  // the two minutes after a restart said "running, embedded 1/16 photos" for good
  const QUIET_MS = 30000;
  let quietTimer = null;

  const ended = (run) => STAGE[run.state] === 2;
  // a worker taking a stalled run over starts it again (a later started_at, progress from 0)
  const started = (run) => (run.started_at ? Date.parse(run.started_at) : 0);
  function newer(a, b) {     // is ``a`` as recent as ``b`` or more (the same run)
    if (STAGE[a.state] !== STAGE[b.state]) return STAGE[a.state] > STAGE[b.state];
    if (started(a) !== started(b)) return started(a) > started(b);
    return a.progress >= b.progress;
  }
  /** Records ``run``; false when it is older than what the page already knows of it. */
  function learn(run) {
    if (!run || (known[run.id] && !newer(run, known[run.id]))) return false;
    known[run.id] = run;
    showRow(run);
    refreshPhotos(run);
    return true;
  }

  // a person's page: each photo's line (verdict, mask, embedding state) as the page was rendered; a
  // photo just added said "pending" until the page was reloaded, the bar saying "succeeded" beside
  // it. Read again from the server once a run ends while a line says so.
  let photosReadFor = 0;     // the run whose end they were read again for
  function refreshPhotos(run) {
    const lines = [...document.querySelectorAll(".mn-verdict-line")];
    if (!ended(run) || run.id <= photosReadFor || !lines.some((el) => /pending/.test(el.textContent))) return;
    photosReadFor = run.id;
    fetch(location.href, { credentials: "same-origin", redirect: "manual" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        lines.forEach((el) => {
          const now = fresh.querySelector('.mn-verdict-line[data-photo="' + el.dataset.photo + '"]');
          if (now) el.innerHTML = now.innerHTML;   // the site's own markup, escaped by it
        });
      })
      .catch(() => {});
  }

  function watchQuiet() {
    clearTimeout(quietTimer);
    // not once the server has refused (logged out, right withdrawn): asking again cannot help
    quietTimer = pollTimer !== -1 && shown && !ended(shown) ? setTimeout(() => { poll(); watchQuiet(); }, QUIET_MS)
      : null;
  }
  function showRun(run) {
    shown = run;
    watchQuiet();
    runBox.hidden = false;
    bar.value = run.progress;
    stateEl.textContent = "#" + run.id + " " + run.state;
    stateEl.className = "mn-run-state " + run.state;
    msgEl.textContent = run.state === "failed" ? (run.error || run.message) : run.message;
    // the bar's message changed twice a second as a run embedded, once a live region itself: read out
    // now only when the run's state changes, with the outcome once it has ended
    const key = run.id + " " + run.state;
    if (key === said) return;
    said = key;
    if (saidEl) saidEl.textContent = "Index rebuild #" + run.id + " " + run.state + (ended(run) ? ": " + msgEl.textContent : "");
  }
  // the training runs table: progress, state and message live; the rest (started, finished, index
  // version) as the server renders it, reloaded once when a run changes state or a newer one appears
  function table() { return document.querySelector("#result_list tbody"); }
  function showRow(run) {
    const bars = document.querySelectorAll('progress.mn-progress[data-run="' + run.id + '"]');
    bars.forEach((el) => {
      el.value = run.progress;
      const row = el.closest("tr");
      const state = row && row.querySelector(".field-state");
      const message = row && row.querySelector(".field-message");
      if (state && state.textContent.trim() !== run.state) {
        state.textContent = run.state;
        reloadRows(run);
      }
      if (message) message.textContent = run.message;
    });
    document.querySelectorAll('.mn-pct[data-run="' + run.id + '"]').forEach((el) => { el.textContent = run.progress + "%"; });
    const listed = table() ? [...table().querySelectorAll("progress.mn-progress")].map((el) => Number(el.dataset.run)) : [];
    if (!bars.length && listed.length && run.id > Math.max(...listed)) reloadRows(run);   // a new run
  }
  function reloadRows(run) {
    const key = run.id + " " + run.state;
    if (asked.has(key)) return;
    asked.add(key);
    reload();
  }
  function reload() {
    if (reloading) { reloadAgain = true; return; }   // once more when the one on its way is back
    reloading = true;
    fetch(location.href, { credentials: "same-origin", redirect: "manual" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        const fresh = html && new DOMParser().parseFromString(html, "text/html").querySelector("#result_list tbody");
        const rows = table();
        if (!fresh || !rows) return;
        rows.replaceWith(fresh);
        Object.values(known).forEach(showRow);   // the page may know more than that page did
      })
      .catch(() => {})
      .finally(() => {
        reloading = false;
        if (reloadAgain) { reloadAgain = false; reload(); }
      });
  }
  function showIndex(info) {
    if (!info) return;
    if (info.version === null) {   // an erasure deleted an active version it could not read
      indexShown = 0;
      indexEl.textContent = "No index active: a rebuild is queued";
      return;
    }
    if (info.version < indexShown) return;
    indexShown = info.version;
    const count = (n, one, many) => n + " " + (n === 1 ? one : many);
    indexEl.textContent = "Index v" + info.version + " active: " + count(info.people, "person", "people") + ", "
      + count(info.templates, "template", "templates");
    // the server says whether the active version is this recognizer's ("outdated": false once rebuilt)
    if (info.outdated === false) root.querySelectorAll(".mn-outdated").forEach((el) => { el.hidden = true; });
  }
  function stopPolling() { clearInterval(pollTimer); pollTimer = -1; clearTimeout(quietTimer); }
  function poll() {
    fetch(root.dataset.poll, { credentials: "same-origin", redirect: "manual" })
      .then((r) => {
        // logged out (a redirect to the login page) or the right withdrawn: asking again cannot help
        if (r.type === "opaqueredirect" || r.status === 401 || r.status === 403) { stopPolling(); return null; }
        const json = (r.headers.get("content-type") || "").includes("application/json");
        return r.ok && json ? r.json() : null;
      })
      .then((data) => {
        if (!data) return;
        // oldest first, so that the bar ends on the latest run (an answer never undoes a newer message)
        data.runs.slice().reverse().forEach(learn);
        const latest = data.runs[0];
        if (latest && (!shown || latest.id >= shown.id)) showRun(known[latest.id]);
        showIndex(data.index);
      })
      .catch(() => {});
  }
  function startPolling() { if (!pollTimer) pollTimer = setInterval(poll, 3000); }

  const latest = document.getElementById("mn-latest-run");
  const first = latest && JSON.parse(latest.textContent);
  if (first) { known[first.id] = first; said = first.id + " " + first.state; showRun(first); }   // not read out

  try {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + root.dataset.ws);
    // what was sent between the page's rendering and the socket joining its group is lost (a
    // cached-template rebuild takes half a second): asked for once it has joined
    ws.onopen = poll;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      watchQuiet();   // heard from the server: the quiet starts again
      if (msg.type === "progress" && learn(msg.run)) showRun(msg.run);
      // the socket joined its group again after a Redis outage (or after failing to join): what was
      // sent meanwhile is lost, a run that ended then would stay "running" here
      if (msg.type === "resync") poll();
      if (msg.type === "index") {
        showIndex(msg);
        // a new version comes from a run that has ended: one the bar does not show ended (its
        // "succeeded" went out before the socket joined) is asked for
        if (!shown || !ended(shown) || shown.index_version !== msg.version) poll();
      }
    };
    ws.onclose = startPolling;
    ws.onerror = startPolling;
  } catch (e) {
    startPolling();
  }
})();
