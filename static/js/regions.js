// Movement regions on the recording page: draw, move and resize rectangles over a still with
// pointer events (arrow keys nudge a focused rectangle, Shift+arrows resize it), then save them;
// the server queues the motion pass again and the status line polls until it is done.
(function () {
  "use strict";

  var ROLES = ["therapist", "client", "background"];
  var MIN = 0.02; // smallest side, as a share of the picture (the server refuses smaller)

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }
  function round4(v) { return Math.round(v * 10000) / 10000; }

  function init() {
    var editor = document.getElementById("region-editor");
    if (!editor) return;
    var stage = document.getElementById("region-stage");
    var message = document.getElementById("region-message");
    var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    var regions = {};
    (JSON.parse(editor.dataset.regions || "[]") || []).forEach(function (r) { regions[r.name] = r; });
    var boxes = {};

    function role() {
      var checked = editor.querySelector('input[name="region-role"]:checked');
      return checked ? checked.value : "therapist";
    }

    function point(ev) {
      var rect = stage.getBoundingClientRect();
      return { x: clamp((ev.clientX - rect.left) / rect.width, 0, 1), y: clamp((ev.clientY - rect.top) / rect.height, 0, 1) };
    }

    function place(name) {
      var r = regions[name], box = boxes[name];
      if (!r) { if (box) { box.remove(); delete boxes[name]; } return; }
      if (!box) {
        box = document.createElement("div");
        box.className = "region-box region-" + name;
        box.tabIndex = 0;
        box.setAttribute("role", "img");
        box.dataset.name = name;
        var label = document.createElement("span");
        label.textContent = name;
        var grip = document.createElement("div");
        grip.className = "grip";
        box.appendChild(label); box.appendChild(grip);
        stage.appendChild(box);
        boxes[name] = box;
        box.addEventListener("pointerdown", function (ev) { startDrag(ev, name, ev.target === grip ? "resize" : "move"); });
        box.addEventListener("keydown", function (ev) { nudge(ev, name); });
      }
      box.style.left = r.x * 100 + "%"; box.style.top = r.y * 100 + "%";
      box.style.width = r.w * 100 + "%"; box.style.height = r.h * 100 + "%";
      box.setAttribute("aria-label", name + " region: " + Math.round(r.x * 100) + "% from the left, " +
        Math.round(r.y * 100) + "% from the top, " + Math.round(r.w * 100) + "% wide, " + Math.round(r.h * 100) + "% high");
    }

    function placeAll() { ROLES.forEach(place); }

    var drag = null;
    function startDrag(ev, name, mode) {
      ev.preventDefault(); ev.stopPropagation();
      var p = point(ev), r = regions[name];
      drag = { name: name, mode: mode, start: p, orig: { x: r.x, y: r.y, w: r.w, h: r.h } };
      stage.setPointerCapture(ev.pointerId);
    }

    stage.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0) return;
      ev.preventDefault();
      var p = point(ev), name = role();
      regions[name] = { name: name, x: p.x, y: p.y, w: 0, h: 0 };
      drag = { name: name, mode: "draw", start: p };
      stage.setPointerCapture(ev.pointerId);
      place(name);
    });

    stage.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var p = point(ev), r = regions[drag.name], o = drag.orig;
      if (drag.mode === "draw") {
        r.x = Math.min(p.x, drag.start.x); r.y = Math.min(p.y, drag.start.y);
        r.w = Math.abs(p.x - drag.start.x); r.h = Math.abs(p.y - drag.start.y);
      } else if (drag.mode === "move") {
        r.x = clamp(o.x + p.x - drag.start.x, 0, 1 - o.w); r.y = clamp(o.y + p.y - drag.start.y, 0, 1 - o.h);
      } else {
        r.w = clamp(o.w + p.x - drag.start.x, MIN, 1 - o.x); r.h = clamp(o.h + p.y - drag.start.y, MIN, 1 - o.y);
      }
      place(drag.name);
    });

    function endDrag() {
      if (!drag) return;
      var r = regions[drag.name];
      if (drag.mode === "draw" && (r.w < MIN || r.h < MIN)) { delete regions[drag.name]; place(drag.name); }
      else if (boxes[drag.name]) boxes[drag.name].focus();
      drag = null;
    }
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);

    function nudge(ev, name) {
      var d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[ev.key];
      if (!d) return;
      ev.preventDefault();
      var r = regions[name], step = 0.01;
      if (ev.shiftKey) {
        r.w = clamp(r.w + d[0] * step, MIN, 1 - r.x); r.h = clamp(r.h + d[1] * step, MIN, 1 - r.y);
      } else {
        r.x = clamp(r.x + d[0] * step, 0, 1 - r.w); r.y = clamp(r.y + d[1] * step, 0, 1 - r.h);
      }
      place(name);
    }

    // Without a mouse: the chosen region as a rectangle where that person usually sits (or the
    // one already drawn), focused, so the arrow keys move it and Shift+arrows resize it.
    var START = {
      therapist: { x: 0.05, y: 0.1, w: 0.4, h: 0.8 },
      client: { x: 0.55, y: 0.1, w: 0.4, h: 0.8 },
      background: { x: 0.02, y: 0.02, w: 0.1, h: 0.1 },
    };
    document.getElementById("region-add").addEventListener("click", function () {
      var name = role();
      if (!regions[name]) regions[name] = Object.assign({ name: name }, START[name]);
      place(name);
      boxes[name].focus();
    });

    function say(text, isError) {
      message.textContent = text;
      message.className = isError ? "error" : "";
    }

    function send(url, options) {
      options.headers = Object.assign({ "X-CSRFToken": csrf, Accept: "application/json" }, options.headers || {});
      options.credentials = "same-origin";
      return fetch(url, options).then(function (resp) {
        return resp.text().then(function (text) {
          var body = null;
          try { body = JSON.parse(text); } catch (e) { body = null; }
          if (!resp.ok) throw new Error((body && (body.message || (body.error && body.error.message))) || "The server refused: " + resp.status);
          return body;
        });
      });
    }

    document.getElementById("region-suggest").addEventListener("click", function () {
      say("Looking for faces…");
      send(editor.dataset.suggest, { method: "GET" }).then(function (body) {
        body.regions.forEach(function (r) { regions[r.name] = r; });
        placeAll();
        say(!body.detector
          ? "No face detector is installed on the server: the halves are suggested; adjust and save."
          : body.faces >= 2
            ? "Suggested around the two largest faces found (left: therapist; swap them if the therapist sits on the right); adjust and save."
            : (body.faces === 1 ? "Only one face" : "No face") + " found: the halves are suggested; adjust and save.");
      }).catch(function (err) { say(err.message, true); });
    });

    document.getElementById("region-clear").addEventListener("click", function () {
      regions = {}; placeAll(); say("");
    });

    document.getElementById("region-save").addEventListener("click", function () {
      var list = ROLES.filter(function (n) { return regions[n]; }).map(function (n) {
        var r = regions[n];
        return { name: n, x: round4(r.x), y: round4(r.y), w: round4(r.w), h: round4(r.h) };
      });
      say("Saving…");
      send(editor.dataset.save, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ regions: list, study_default: document.getElementById("region-default").checked }),
      }).then(function () {
        say("Saved. Movement is being analysed again…");
        var status = document.getElementById("job-status");
        if (status && window.htmx) {
          window.htmx.ajax("GET", editor.dataset.status, { target: "#job-status", swap: "outerHTML" });
        }
      }).catch(function (err) { say(err.message, true); });
    });

    var still = document.getElementById("region-still");
    if (still.complete) placeAll(); else still.addEventListener("load", placeAll);
    placeAll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
