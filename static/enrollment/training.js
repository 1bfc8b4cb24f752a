// Live index-rebuild status on the enrollment admin pages: a WebSocket on the "training" group,
// falling back to polling status.json when the socket cannot be opened.
(function () {
  "use strict";
  const root = document.getElementById("mn-status");
  if (!root) return;
  const runBox = root.querySelector(".mn-run");
  const bar = runBox.querySelector("progress");
  const stateEl = runBox.querySelector(".mn-run-state");
  const msgEl = runBox.querySelector(".mn-run-msg");
  const indexEl = root.querySelector(".mn-index");
  let pollTimer = null;
  let heard = 0;             // socket messages so far: a poll answered after one is older than it

  function showRun(run) {
    if (!run) return;
    runBox.hidden = false;
    bar.value = run.progress;
    stateEl.textContent = "#" + run.id + " " + run.state;
    stateEl.className = "mn-run-state " + run.state;
    msgEl.textContent = run.state === "failed" ? (run.error || run.message) : run.message;
    document.querySelectorAll('progress.mn-progress[data-run="' + run.id + '"]').forEach((el) => { el.value = run.progress; });
    document.querySelectorAll('.mn-pct[data-run="' + run.id + '"]').forEach((el) => { el.textContent = run.progress + "%"; });
  }
  function showIndex(info) {
    if (!info) return;
    indexEl.textContent = "Index v" + info.version + " active: " + info.people + " people, " + info.templates + " templates";
    // the server says whether the active version is this recognizer's ("outdated": false once rebuilt)
    if (info.outdated === false) root.querySelectorAll(".mn-outdated").forEach((el) => { el.hidden = true; });
  }
  function stopPolling() { clearInterval(pollTimer); pollTimer = -1; }
  function poll() {
    const asked = heard;
    fetch(root.dataset.poll, { credentials: "same-origin", redirect: "manual" })
      .then((r) => {
        // logged out (a redirect to the login page) or the right withdrawn: asking again cannot help
        if (r.type === "opaqueredirect" || r.status === 401 || r.status === 403) { stopPolling(); return null; }
        const json = (r.headers.get("content-type") || "").includes("application/json");
        return r.ok && json ? r.json() : null;
      })
      .then((data) => { if (data && heard === asked) { showRun(data.runs[0]); showIndex(data.index); } })
      .catch(() => {});
  }
  function startPolling() { if (!pollTimer) pollTimer = setInterval(poll, 3000); }

  const latest = document.getElementById("mn-latest-run");
  if (latest) showRun(JSON.parse(latest.textContent));

  try {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + root.dataset.ws);
    // what was sent between the page's rendering and the socket joining its group is lost (a
    // cached-template rebuild takes half a second): asked for once it has joined
    ws.onopen = poll;
    ws.onmessage = (ev) => {
      heard += 1;
      const msg = JSON.parse(ev.data);
      if (msg.type === "progress") showRun(msg.run);
      if (msg.type === "index") showIndex(msg);
    };
    ws.onclose = startPolling;
    ws.onerror = startPolling;
  } catch (e) {
    startPolling();
  }
})();
