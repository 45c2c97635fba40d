// Counts down the time a gate still holds a promotion (elements with data-until, an ISO time).
"use strict";
(function () {
  function format(seconds) {
    if (seconds <= 0) return "0s (refresh)";
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
          m = Math.floor(seconds % 3600 / 60), s = Math.floor(seconds % 60);
    return (d ? d + "d" : "") + (d || h ? h + "h" : "") + m + "m" + s + "s";
  }
  function tick() {
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      el.textContent = format((Date.parse(el.dataset.until) - Date.now()) / 1000);
    });
  }
  tick();
  setInterval(tick, 1000);
})();
