// Small progressive enhancements for the researcher pages. No inline script (strict CSP).
(function () {
  "use strict";

  function paintSwatches(root) {
    root.querySelectorAll("[data-colour]").forEach(function (el) {
      el.style.background = el.getAttribute("data-colour");
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
  function labelCells(root) {
    root.querySelectorAll("table.table").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.prototype.forEach.call(tr.children, function (cell, i) {
          if (heads[i] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[i]);
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
