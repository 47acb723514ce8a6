// Small progressive enhancements for the researcher pages. No inline script (strict CSP).
(function () {
  "use strict";

  // WCAG relative luminance of a #rrggbb colour (null for anything else).
  function luminance(hex) {
    var m = /^#([0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return null;
    var n = parseInt(m[1], 16);
    return [n >> 16, (n >> 8) & 255, n & 255].reduce(function (sum, c, i) {
      var v = c / 255;
      v = v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
      return sum + v * [0.2126, 0.7152, 0.0722][i];
    }, 0);
  }

  // A code's own colour as background; its name in white or near-black, whichever reads better.
  function paintSwatches(root) {
    root.querySelectorAll("[data-colour]").forEach(function (el) {
      var colour = el.getAttribute("data-colour");
      el.style.background = colour;
      var lum = luminance(colour);
      if (lum === null || !el.textContent.trim()) return;
      var onWhite = 1.05 / (lum + 0.05), onDark = (lum + 0.05) / 0.0635; // contrast with #1b1f23
      if (Math.max(onWhite, onDark) >= 4.5) el.style.color = onWhite >= onDark ? "#fff" : "#1b1f23";
      else { el.style.background = "#fff"; el.style.color = "#1b1f23"; el.style.border = "2px solid " + colour; }
    });
  }

  function showFlash(message) {
    var flash = document.getElementById("flash");
    if (!flash) return;
    flash.textContent = message;
    flash.hidden = false;
    window.clearTimeout(showFlash.timer);
    showFlash.timer = window.setTimeout(function () { flash.hidden = true; }, 8000);
  }

  // Below tablet width a table becomes a stack of cards (app.css): each cell is labelled
  // with its column's heading, so a card still says what each value is.
  // A cell's column counts the cells of rows above that reach down into its row (rowspan,
  // e.g. the dashboard's dyad beside its sessions) and the columns a cell spans (colspan).
  function labelCells(root) {
    root.querySelectorAll("table.table").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      table.querySelectorAll("tbody").forEach(function (tbody) {
        var below = [];  // per column: how many more rows a cell above still covers
        Array.prototype.forEach.call(tbody.rows, function (tr) {
          var col = 0;
          Array.prototype.forEach.call(tr.cells, function (cell) {
            while (below[col] > 0) col++;
            if (heads[col] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[col]);
            for (var k = 0; k < (cell.colSpan || 1); k++) below[col + k] = cell.rowSpan || 1;
            col += cell.colSpan || 1;
          });
          below = below.map(function (n) { return n > 0 ? n - 1 : 0; });
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    paintSwatches(document);
    labelCells(document);
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    paintSwatches(ev.target);
    labelCells(ev.target.closest("table") ? ev.target.closest("table").parentNode : ev.target);
  });

  // Errors htmx does not swap (403, 404, 5xx, network): tell the user instead of failing silently.
  document.addEventListener("htmx:responseError", function (ev) {
    var xhr = ev.detail.xhr;
    var text = "Something went wrong (" + xhr.status + ").";
    var tmp = document.createElement("div");
    tmp.innerHTML = xhr.responseText || "";
    var p = tmp.querySelector(".error");
    if (p && p.textContent) text = p.textContent;
    showFlash(text);
  });
  document.addEventListener("htmx:sendError", function () {
    showFlash("Could not reach the server. Check your connection; nothing was changed.");
  });
})();
