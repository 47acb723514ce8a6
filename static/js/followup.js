// The follow-up page: each own moment in turn, a short clip around it, a re-rating, autosaved.
// No inline script (strict CSP): data and translated strings come from #followup-data.
// Saves are PUTs of a moment's whole follow-up state: sending one again changes nothing, so
// the outbox (kept in localStorage until the server has answered) may retry freely.
(function () {
  "use strict";

  var dataEl = document.getElementById("followup-data");
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var S = data.strings;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var $ = function (id) { return document.getElementById(id); };
  var moments = data.moments;
  var state = {};
  data.items.forEach(function (r) { state[r.moment_id] = { ratings: r.ratings || {}, comment: r.comment || "" }; });

  function fmt(ms) {
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    var sec = ("0" + (s % 60)).slice(-2);
    return h ? h + ":" + ("0" + m).slice(-2) + ":" + sec : m + ":" + sec;
  }
  function tpl(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, k) { return k in values ? values[k] : all; });
  }

  // ---------------------------------------------------------------- outbox
  var KEY = "ipr-followup-outbox-" + data.urls.save.split("/")[2];
  var outbox = {};  // moment id -> the state to send
  var busy = false, failed = false, retryDelay = 1000, retryTimer = null, ended = false;
  var typing = null;  // a comment being typed: saved once typing pauses
  try { outbox = JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { outbox = {}; }
  Object.keys(outbox).forEach(function (id) { if (state[id]) state[id] = outbox[id]; });

  function persist() {
    try {
      if (Object.keys(outbox).length) localStorage.setItem(KEY, JSON.stringify(outbox));
      else localStorage.removeItem(KEY);
    } catch (e) { /* storage full or disabled: the in-memory outbox still retries */ }
  }
  function showStatus() {
    var el = $("save-status");
    var st = failed ? "failed" : busy || typing !== null ? "saving"
      : Object.keys(outbox).length ? "pending" : "saved";
    el.setAttribute("data-state", st);
    el.textContent = S[st];
  }
  function enqueue(id) {
    outbox[id] = JSON.parse(JSON.stringify(state[id]));
    persist();
    pump();
  }
  function pump() {
    showStatus();
    if (busy || retryTimer || ended) return;
    var ids = Object.keys(outbox);
    if (!ids.length) return;
    var id = ids[0], body = outbox[id], sent = JSON.stringify(body);
    busy = true;
    showStatus();
    fetch(data.urls.save.replace("{moment_id}", id), {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
      body: sent,
    }).then(function (resp) {
      busy = false;
      if (resp.status === 401) { endLink(); return; }
      if (resp.status >= 500 || resp.status === 429 || resp.status === 408) throw new Error("retry");
      if (JSON.stringify(outbox[id]) === sent) delete outbox[id];
      if (!resp.ok) failed = true;  // refused (e.g. finished): retrying cannot help
      else retryDelay = 1000;
      persist();
      pump();
    }).catch(function () {
      busy = false;
      retryTimer = window.setTimeout(function () { retryTimer = null; pump(); }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
      showStatus();
    });
  }
  function flush(timeoutMs) {
    return new Promise(function (resolve) {
      var until = Date.now() + timeoutMs;
      (function check() {
        if (!Object.keys(outbox).length) return resolve(true);
        if (Date.now() > until) return resolve(false);
        window.setTimeout(check, 150);
      })();
    });
  }
  function endLink() {
    ended = true;
    $("save-status").textContent = S.ended;
    window.setTimeout(function () { window.location.reload(); }, 1500);
  }
  window.addEventListener("online", function () {
    if (retryTimer) { window.clearTimeout(retryTimer); retryTimer = null; }
    pump();
  });

  // ---------------------------------------------------------------- one moment at a time
  var video = $("fu-video"), index = 0, stopAt = null;
  function current() { return moments[index]; }
  function readForm() {
    window.clearTimeout(typing);
    typing = null;
    var m = current(), ratings = {};
    document.querySelectorAll("#fu-form fieldset.scale").forEach(function (fs) {
      var picked = fs.querySelector("input:checked");
      if (picked) ratings[fs.getAttribute("data-key")] = parseInt(picked.value, 10);
    });
    var next = { ratings: ratings, comment: $("fu-comment").value };
    if (JSON.stringify(next) !== JSON.stringify(state[m.id])) {
      state[m.id] = next;
      enqueue(m.id);
    }
  }
  function cue() {
    var m = current();
    stopAt = null;
    video.pause();
    try { video.currentTime = m.clip_start_ms / 1000; } catch (e) { /* metadata not loaded yet */ }
  }
  function show(i) {
    index = i;
    var m = current(), st = state[m.id] || { ratings: {}, comment: "" };
    $("fu-pass").setAttribute("data-current-moment", m.id);  // what a distress flag names
    $("fu-pos").textContent = tpl(S.position, { n: i + 1, total: moments.length, time: fmt(m.t_ms) });
    $("fu-range").textContent = tpl(S.range, { start: fmt(m.clip_start_ms), end: fmt(m.clip_end_ms) });
    var text = $("fu-text");
    text.textContent = m.text || S.no_text;
    text.classList.toggle("muted", !m.text);
    document.querySelectorAll("#fu-form fieldset.scale").forEach(function (fs) {
      var v = st.ratings[fs.getAttribute("data-key")];
      fs.querySelectorAll("input").forEach(function (r) { r.checked = String(v) === r.value; });
    });
    $("fu-comment").value = st.comment || "";
    $("fu-prev").disabled = i === 0;
    $("fu-next").hidden = i === moments.length - 1;
    $("fu-done").hidden = i !== moments.length - 1;
    cue();
  }
  video.addEventListener("loadedmetadata", cue);
  video.addEventListener("timeupdate", function () {
    if (stopAt !== null && video.currentTime * 1000 >= stopAt) { video.pause(); stopAt = null; }
  });
  $("fu-play").addEventListener("click", function () {
    var m = current();
    video.currentTime = m.clip_start_ms / 1000;
    stopAt = m.clip_end_ms;
    var p = video.play();
    if (p && p.catch) p.catch(function () { /* the participant can press play again */ });
  });
  document.querySelectorAll("#fu-form input[type=radio]").forEach(function (r) {
    r.addEventListener("change", readForm);
  });
  function typed() { readForm(); showStatus(); }
  $("fu-comment").addEventListener("input", function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(typed, 600);  // saved once typing pauses
    showStatus();
  });
  $("fu-comment").addEventListener("change", typed);
  $("fu-form").addEventListener("submit", function (e) { e.preventDefault(); });
  $("fu-prev").addEventListener("click", function () { readForm(); if (index > 0) { show(index - 1); $("fu-pos").focus(); } });
  $("fu-next").addEventListener("click", function () {
    readForm();
    if (index < moments.length - 1) { show(index + 1); $("fu-pos").focus(); }
  });
  $("fu-done").addEventListener("click", function () {
    readForm();
    var btn = $("fu-done");
    btn.disabled = true;
    flush(20000).then(function (ok) {
      if (!ok) { btn.disabled = false; return; }
      return fetch(data.urls.finish, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrf },
      }).then(function (resp) {
        btn.disabled = false;
        if (resp.status === 401) { endLink(); return; }
        if (!resp.ok) return;
        video.pause();
        $("fu-pass").hidden = true;
        $("fu-thanks").hidden = false;
        $("fu-thanks-h").setAttribute("tabindex", "-1");
        $("fu-thanks-h").focus();
      }, function () { btn.disabled = false; });
    });
  });
  window.addEventListener("pagehide", function () { if (!$("fu-pass").hidden) readForm(); });

  // *Stop for now*: what is typed is saved first, then every device of the link ends
  var stop = $("fu-stop");
  if (stop) stop.form.addEventListener("submit", function (e) {
    if (stop.form.getAttribute("data-flushed")) return;
    e.preventDefault();
    if (!$("fu-pass").hidden) readForm();
    flush(10000).then(function () { stop.form.setAttribute("data-flushed", "1"); stop.form.submit(); });
  });

  var start = $("fu-start");
  if (start) start.addEventListener("click", function () {
    $("fu-intro").hidden = true;
    $("fu-pass").hidden = false;
    show(0);
    $("fu-pos").focus();
  });
  pump();
})();
