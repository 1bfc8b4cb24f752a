/* The proxy's offline page (static/offline.html, nginx's answer while no MaskNet web process does) in the
 * kiosk's language: nothing there can ask the server which one, so the kiosk page keeps its language in this
 * browser's localStorage ("masknet.kiosk.language", static/kiosk/kiosk.js) and this shows the page's words in it,
 * the <main lang="..."> of that language; English (the page as served) without one, or for a language the page
 * has no words of. Plain JavaScript, no build step.
 */
(function () {
  "use strict";
  let code = null;
  try { code = window.localStorage.getItem("masknet.kiosk.language"); } catch (e) { return; }   // storage off
  const cards = Array.prototype.slice.call(document.querySelectorAll("main[lang]"));
  const chosen = cards.filter((card) => card.getAttribute("lang") === code)[0];
  if (!chosen) return;
  for (const card of cards) card.hidden = card !== chosen;
  document.documentElement.lang = code;
  document.title = chosen.getAttribute("data-title") || document.title;
})();
