// The interviewer's prompt panel on a researcher-led recall page: shown while a stop (moment) is
// open, it notes the participant's answers. recall.js sends them with that moment through its
// outbox (PUT …/moments/<id>/answers): kept in localStorage, retried with backoff, restored here
// after a reload; this panel only says which answers changed and how far they have got.
(function () {
  "use strict";
  var panel = document.getElementById("prompt-panel");
  var node = document.getElementById("prompt-data");
  if (!panel || !node) return;
  var data = JSON.parse(node.textContent);
  var S = data.strings;
  var form = document.getElementById("prompt-form");
  var stateEl = document.getElementById("prompt-state");
  var saved = data.answers || {}; // moment id -> {key: value} as the server has them
  var unsent = {}; // lid -> {key: value|null} handed to the outbox, not confirmed yet
  var current = null; // {lid, id, t_ms, label}
  var timer = null;
  var questions = Array.prototype.slice.call(form.querySelectorAll(".prompt-q"));

  function tpl(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, k) { return k in values ? values[k] : all; });
  }
  function valueOf(q) {
    if (q.getAttribute("data-kind") === "text") return q.querySelector("textarea").value;
    var on = q.querySelector("input:checked");
    if (!on) return null;
    return q.getAttribute("data-kind") === "scale" ? parseInt(on.value, 10) : on.value;
  }
  function fill(values) {
    questions.forEach(function (q) {
      var key = q.getAttribute("data-key"), v = values[key];
      if (q.getAttribute("data-kind") === "text") q.querySelector("textarea").value = v || "";
      else q.querySelectorAll("input").forEach(function (r) { r.checked = v !== undefined && v !== null && String(v) === r.value; });
    });
  }
  function norm(v) { return v === undefined || v === null || v === "" ? "" : String(v); }
  // What the sheet shows for a stop: the server's answers with this page's unsent ones over them.
  function known(lid, id) {
    var base = id ? saved[String(id)] || {} : {};
    return Object.assign({}, base, unsent[lid] || {});
  }
  function show(state, reason) {
    var text = { saving: S.saving, pending: S.retrying, held: S.waiting, saved: S.saved, failed: tpl(S.failed, { reason: reason || "" }) }[state] || "";
    stateEl.textContent = text;
    stateEl.setAttribute("data-state", state || "");
  }
  // Hand every answer that differs from what the page knows to the outbox (the last edit wins).
  function changed() {
    if (!current) return;
    var before = known(current.lid, current.id);
    var diff = {};
    questions.forEach(function (q) {
      var key = q.getAttribute("data-key"), v = valueOf(q);
      if (v === "") v = null;
      if (norm(v) !== norm(before[key])) diff[key] = v;
    });
    if (!Object.keys(diff).length) return;
    unsent[current.lid] = Object.assign(unsent[current.lid] || {}, diff);
    document.dispatchEvent(new CustomEvent("recall:answers", { detail: { lid: current.lid, answers: diff } }));
  }
  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(changed, 700);
  }
  form.addEventListener("input", function (ev) { if (ev.target.tagName === "TEXTAREA") later(); });
  form.addEventListener("change", function () { window.clearTimeout(timer); changed(); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });

  document.addEventListener("recall:closing", function () { window.clearTimeout(timer); changed(); });
  // The outbox is done with these answers (saved, or refused): they are no longer unsent.
  function settle(lid, sent) {
    var mine = unsent[lid];
    if (!mine) return;
    Object.keys(sent || {}).forEach(function (k) { if (k in mine && norm(mine[k]) === norm(sent[k])) delete mine[k]; });
    if (!Object.keys(mine).length) delete unsent[lid];
  }
  document.addEventListener("ipr:answers-saved", function (ev) {
    var d = ev.detail;
    saved[String(d.id)] = d.answers;
    settle(d.lid, d.sent);
    panel.setAttribute("data-saved-moment", String(d.id)); // the last stop whose answers arrived
    if (current && current.lid === d.lid) {
      current.id = d.id;
      if (!unsent[d.lid]) show("saved");
    }
  });
  // Refused (422: retrying cannot help): the sheet keeps what was typed and says why; the next
  // change sends it again.
  document.addEventListener("ipr:answers-failed", function (ev) {
    var d = ev.detail;
    settle(d.lid, d.sent);
    if (current && current.lid === d.lid) show("failed", d.reason);
  });
  document.addEventListener("ipr:answers-state", function (ev) {
    var state = current && ev.detail[current.lid];
    if (state) show(state);
  });
  document.addEventListener("recall:moment", function (ev) {
    var d = ev.detail;
    if (current && (!d || d.lid !== current.lid)) { window.clearTimeout(timer); changed(); }
    if (!d) { current = null; panel.hidden = true; return; }
    var same = current && current.lid === d.lid;
    current = { lid: d.lid, id: d.id, t_ms: d.t_ms, label: d.label };
    if (d.answers && Object.keys(d.answers).length) unsent[d.lid] = Object.assign({}, d.answers, unsent[d.lid] || {});
    if (same) return;
    document.getElementById("prompt-at").textContent = tpl(S.at, { time: d.label });
    show(d.answers_state);
    fill(known(d.lid, d.id));
    panel.hidden = false;
  });
})();
