// The interviewer's prompt panel on a researcher-led recall page: shown while a stop (moment) is
// open, it saves the participant's answers with that moment (PUT …/moments/<id>/answers).
(function () {
  "use strict";
  var panel = document.getElementById("prompt-panel");
  var node = document.getElementById("prompt-data");
  if (!panel || !node) return;
  var data = JSON.parse(node.textContent);
  var S = data.strings;
  var form = document.getElementById("prompt-form");
  var stateEl = document.getElementById("prompt-state");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var saved = data.answers || {}; // moment id -> {key: value}
  var pending = {}; // lid -> {key: value|null} not yet sent
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
  function known() {
    var base = current && current.id ? saved[String(current.id)] || {} : {};
    return Object.assign({}, base, (current && pending[current.lid]) || {});
  }
  function changed() {
    if (!current) return;
    var before = current.id ? saved[String(current.id)] || {} : {};
    var diff = {};
    questions.forEach(function (q) {
      var key = q.getAttribute("data-key"), v = valueOf(q);
      var old = before[key] === undefined ? null : before[key];
      if (v === "" ) v = null;
      if (String(v) !== String(old)) diff[key] = v;
    });
    pending[current.lid] = diff;
    if (!Object.keys(diff).length) { delete pending[current.lid]; return; }
    if (!current.id) {
      stateEl.textContent = S.waiting;
      document.dispatchEvent(new CustomEvent("recall:save-moment"));
      return;
    }
    send(current.lid, current.id);
  }
  var inflight = false, again = null; // one save at a time: a change meanwhile waits its turn
  function send(lid, id) {
    var body = pending[lid];
    if (!body || !Object.keys(body).length) return;
    if (inflight) { again = { lid: lid, id: id }; return; }
    delete pending[lid];
    inflight = true;
    stateEl.textContent = S.saving;
    fetch(data.url.replace("{moment_id}", id), {
      method: "PUT",
      headers: { "X-CSRFToken": csrf, Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ answers: body }),
      credentials: "same-origin",
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (out) {
        if (!resp.ok) {
          var err = out.error || {};
          throw new Error((err.problems || []).join("; ") || err.message || String(resp.status));
        }
        saved[String(id)] = out.answers;
        stateEl.textContent = S.saved;
        panel.setAttribute("data-saved-moment", String(id));
      });
    }).catch(function (e) {
      pending[lid] = Object.assign(body, pending[lid] || {}); // kept: the next change retries
      stateEl.textContent = tpl(S.failed, { reason: e.message });
    }).then(function () {
      inflight = false;
      var next = again;
      again = null;
      if (next && current && current.lid === next.lid) changed();
      else if (next) send(next.lid, next.id);
    });
  }
  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(changed, 700);
  }
  form.addEventListener("input", function (ev) { if (ev.target.tagName === "TEXTAREA") later(); });
  form.addEventListener("change", function () { window.clearTimeout(timer); changed(); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });

  // A stop marked offline gets its id when the connection is back, perhaps long after its
  // form was closed: the answers that waited for it go then.
  document.addEventListener("ipr:moment-saved", function (ev) {
    var d = ev.detail || {};
    if (d.id && pending[d.lid]) send(d.lid, d.id);
  });
  document.addEventListener("recall:moment", function (ev) {
    var d = ev.detail;
    if (current && (!d || d.lid !== current.lid)) { window.clearTimeout(timer); changed(); }
    if (!d) { current = null; panel.hidden = true; return; }
    var same = current && current.lid === d.lid;
    current = d;
    if (d.id && pending[d.lid]) send(d.lid, d.id);
    if (same) return;
    document.getElementById("prompt-at").textContent = tpl(S.at, { time: d.label });
    stateEl.textContent = "";
    fill(known());
    panel.hidden = false;
  });
})();
