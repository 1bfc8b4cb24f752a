/* Drives static/kiosk/offline.js (the proxy's offline page, static/offline.html) in Node against that page's own
 * <main lang> cards: shown in the language the kiosk page kept in localStorage, as served (English) without one,
 * for a language the page has no words of, or where storage refuses.
 * Run by tests/test_page_scripts.py; one line per check, exit 1 on a failure.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const { element, checker } = require("./harness");

const STATIC = path.join(__dirname, "..", "..", "static");
const SOURCE = fs.readFileSync(path.join(STATIC, "kiosk", "offline.js"), "utf8");
const PAGE = fs.readFileSync(path.join(STATIC, "offline.html"), "utf8");

/** The page's cards as served and its world, after offline.js ran with ``storage`` as localStorage. */
function run(storage) {
  const cards = [...PAGE.matchAll(/<main [^>]*lang="([^"]+)" data-title="([^"]+)"([^>]*)>/g)].map(([, lang, title, rest]) =>
    element({ hidden: / hidden/.test(rest), getAttribute: (name) => ({ lang: lang, "data-title": title })[name] }));
  const document = { title: "Starting up · MaskNet", documentElement: { lang: "en" },
                     querySelectorAll: (selector) => (selector === "main[lang]" ? cards : []) };
  const context = { document: document, window: { localStorage: storage }, Array: Array };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  return { shown: cards.filter((c) => !c.hidden).map((c) => c.getAttribute("lang")), document: document };
}

const stored = (value) => ({ getItem: (key) => (key === "masknet.kiosk.language" ? value : null) });
const { check, done } = checker();

let world = run(stored("de"));
check("a German kiosk's browser shows the German card alone, its title and lang too",
      world.shown.join() === "de" && world.document.title === "Wird gestartet · MaskNet"
      && world.document.documentElement.lang === "de", JSON.stringify(world));
world = run(stored(null));
check("without a language kept, English as served", world.shown.join() === "en"
      && world.document.title === "Starting up · MaskNet" && world.document.documentElement.lang === "en",
      JSON.stringify(world));
world = run(stored("xx"));
check("a language the page has no words of: English", world.shown.join() === "en", JSON.stringify(world));
world = run({ getItem() { throw new Error("SecurityError"); } });
check("storage that refuses: English", world.shown.join() === "en", JSON.stringify(world));
check("the page has a card for each kiosk language, English's shown as served",
      run(stored(null)).shown.join() === "en" && [...PAGE.matchAll(/<main [^>]*lang="([^"]+)"/g)].length >= 5);
done();
