/* The attendance page's 30-day chart (templates/attendance/day.html).
 * Its scroll box is a tab stop (tabindex="0" as served, so that keyboards can scroll it with the arrow
 * keys) only while it overflows: where all 30 days fit, a stop that scrolls nothing is noise. It
 * opens scrolled to the day shown, the last bar: a phone showed the oldest days and hid that one.
 */
(function () {
  "use strict";
  const box = document.querySelector(".att-chart-scroll");
  if (!box) return;

  function overflows() { return box.scrollWidth > box.clientWidth + 1; }

  function update() {
    if (overflows()) box.setAttribute("tabindex", "0");
    else if (document.activeElement !== box) box.removeAttribute("tabindex");   // never pull focus away
  }

  const shown = box.querySelector("[aria-current]");
  if (shown && overflows()) {
    const right = shown.getBoundingClientRect().right - box.getBoundingClientRect().right;
    if (right > 0) box.scrollLeft += right + 8;
  }
  update();
  window.addEventListener("resize", update);
})();
