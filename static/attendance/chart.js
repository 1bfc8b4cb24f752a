/* The attendance pages' scroll boxes: the day's 30-day chart and lists (templates/attendance/day.html), the
 * summary's table (summary.html), a person's history (person.html).
 * Each box is a tab stop (tabindex="0" as served, so that keyboards can scroll it with the arrow keys)
 * only while it overflows: where the 30 days or a list's columns fit, a stop that scrolls nothing is
 * noise. The chart opens scrolled to the day shown, the last bar: a phone showed the oldest days and
 * hid that one.
 */
(function () {
  "use strict";
  const boxes = [...document.querySelectorAll(".att-chart-scroll, .att-scroll")];

  function overflows(box) { return box.scrollWidth > box.clientWidth + 1; }

  function update() {
    for (const box of boxes) {
      if (overflows(box)) box.setAttribute("tabindex", "0");
      else if (document.activeElement !== box) box.removeAttribute("tabindex");   // never pull focus away
    }
  }

  const chart = document.querySelector(".att-chart-scroll");
  const shown = chart && chart.querySelector("[aria-current]");
  if (shown && overflows(chart)) {
    const right = shown.getBoundingClientRect().right - chart.getBoundingClientRect().right;
    if (right > 0) chart.scrollLeft += right + 8;
  }
  update();
  window.addEventListener("resize", update);
})();
