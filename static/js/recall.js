// The participant's recall page: player, mark form, autosaving outbox, voice notes, keyboard.
// No inline script (strict CSP): data and translated strings come from #recall-data.
(function () {
  "use strict";

  var dataEl = document.getElementById("recall-data");
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var S = data.strings;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  // After the reveal nobody is locked out: the response pass is open to finished participants
  // too, while the blind-phase moments are frozen (data.frozen_blind; a leading researcher
  // may still correct them).
  var isRevealed = data.revealed !== null && data.revealed !== undefined;
  var locked = data.rs.status === "submitted" && !isRevealed;
  var frozenBlind = !!data.frozen_blind;
  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------- helpers
  function fmt(ms) {
    var total = Math.max(0, Math.floor((ms || 0) / 1000));
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    var ss = (s < 10 ? "0" : "") + s;
    if (h) return h + ":" + (m < 10 ? "0" : "") + m + ":" + ss;
    return m + ":" + ss;
  }
  function parseTime(text) {
    var parts = String(text).trim().split(":");
    if (!parts.length || parts.length > 3) return null;
    var ms = 0;
    for (var i = 0; i < parts.length; i++) {
      if (!/^\d+(\.\d+)?$/.test(parts[i])) return null;
      ms = ms * 60 + parseFloat(parts[i]);
    }
    return Math.round(ms * 1000);
  }
  function tpl(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, k) { return k in values ? values[k] : all; });
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function button(cls, text) {
    var b = el("button", cls, text);
    b.type = "button";
    return b;
  }
  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
  function firstWords(text, n) {
    var t = (text || "").trim().replace(/\s+/g, " ");
    return t.length > n ? t.slice(0, n - 1) + "…" : t;
  }

  // ---------------------------------------------------------------- scales (read from the form)
  var scales = Array.prototype.map.call(document.querySelectorAll("fieldset.scale"), function (fs) {
    var labels = {};
    fs.querySelectorAll("input[type=radio]").forEach(function (r) { labels[r.value] = r.getAttribute("data-label") || ""; });
    return {
      key: fs.getAttribute("data-key"),
      name: fs.querySelector(".scale-name").textContent,
      required: fs.hasAttribute("data-required"),
      labels: labels,
      el: fs,
    };
  });

  // ---------------------------------------------------------------- moments state
  var FIELDS = ["t_ms", "end_ms", "peaks_ms", "text", "codes", "ratings", "responds_to_id"];
  var moments = new Map(); // lid -> moment (server fields + lid + unsaved)
  function fromServer(m) {
    return {
      lid: "s" + m.id, id: m.id, version: m.version, t_ms: m.t_ms, end_ms: m.end_ms,
      peaks_ms: m.peaks_ms || [], text: m.text || "", codes: m.codes || [], ratings: m.ratings || {},
      responds_to_id: m.responds_to_id || null, voice_url: m.voice_url || null, unsaved: false,
      phase: m.phase || "blind",
    };
  }
  (data.moments || []).forEach(function (m) { var x = fromServer(m); moments.set(x.lid, x); });
  var revealed = data.revealed;

  // ---------------------------------------------------------------- save status
  var statusEl = $("save-status");
  var failure = null;
  function showStatus() {
    var state, text;
    if (failure) { state = "failed"; text = failure; }
    else if (!outbox.length) { state = "saved"; text = S.saved; }
    else if (attempt > 0) { state = "pending"; text = S.pending; }
    else { state = "saving"; text = S.saving; }
    if (statusEl.getAttribute("data-state") !== state || statusEl.textContent !== text) {
      statusEl.setAttribute("data-state", state);
      statusEl.textContent = text;
    }
    var answers = JSON.stringify(answersStates());
    if (answers !== lastAnswersStates) {
      lastAnswersStates = answers;
      document.dispatchEvent(new CustomEvent("ipr:answers-state", { detail: JSON.parse(answers) }));
    }
  }
  // Per stop whose prompt answers are not on the server yet: "held" (its moment cannot be
  // saved yet), "saving", or "pending" (the server could not be reached: retrying).
  var lastAnswersStates = "{}";
  function answersStates() {
    var out = {};
    Object.keys(heldAnswers).forEach(function (lid) { out[lid] = "held"; });
    outbox.forEach(function (o) { if (o.op === "answers") out[o.lid] = attempt > 0 ? "pending" : "saving"; });
    return out;
  }
  // What this page still has to send of one stop's answers (the latest value of each prompt).
  function unsentAnswers(lid) {
    var out = Object.assign({}, heldAnswers[lid] || {});
    outbox.forEach(function (o) { if (o.op === "answers" && o.lid === lid) Object.assign(out, o.body); });
    return out;
  }

  // ---------------------------------------------------------------- HTTP
  function Retry(reason) { this.reason = reason; }
  var SAVE_TIMEOUT_MS = 15000;
  function api(method, url, opts) {
    opts = opts || {};
    var headers = { "X-CSRFToken": csrf, Accept: "application/json" };
    var body;
    if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.json); }
    if (opts.form) body = opts.form;
    if (opts.key) headers["Idempotency-Key"] = opts.key;
    // a request to a server that vanished mid-way (a web host lost power) is never answered:
    // give up on it after SAVE_TIMEOUT_MS and retry (a create keeps its Idempotency-Key);
    // not for voice notes, whose upload alone may take longer on a slow line
    var ctl = window.AbortController && !opts.form ? new AbortController() : null;
    var timer = ctl ? window.setTimeout(function () { ctl.abort(); }, SAVE_TIMEOUT_MS) : null;
    return fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin", keepalive: !!opts.keepalive, signal: ctl ? ctl.signal : undefined })
      .catch(function () { window.clearTimeout(timer); throw new Retry("network"); })
      .then(function (resp) {
        window.clearTimeout(timer);
        if (resp.status >= 500 || resp.status === 429 || resp.status === 408) throw new Retry(resp.status);
        if (resp.status === 401) { ended(); throw new Retry("ended"); }
        var ct = resp.headers.get("Content-Type") || "";
        var parsed = ct.indexOf("json") >= 0 ? resp.json() : Promise.resolve(null);
        return parsed.then(function (b) { return { status: resp.status, body: b }; });
      });
  }
  var endedOnce = false;
  function ended() {
    if (endedOnce) return;
    endedOnce = true;
    failure = S.ended;
    showStatus();
    window.setTimeout(function () { window.location.reload(); }, 1500);
  }
  function momentUrl(id) { return data.urls.moments + "/" + id; }
  function voiceUrl(id) { return data.urls.voice.replace("{moment_id}", id); }

  // ---------------------------------------------------------------- outbox
  // Every change becomes an operation, kept in memory and in localStorage until the server has
  // it; a create carries one Idempotency-Key for its whole life, so retries never duplicate.
  var OUTBOX_KEY = "ipr-recall-outbox-" + data.rs.id;
  var outbox = [];
  var heldAnswers = {}; // lid -> prompt answers typed before their moment could be saved
  var busy = false, attempt = 0, retryTimer = null, paused = false;

  function persist() {
    var keep = outbox.filter(function (o) { return o.op !== "voice"; }).map(function (o) {
      return { op: o.op, lid: o.lid, key: o.key, body: o.body };
    });
    try {
      if (keep.length) localStorage.setItem(OUTBOX_KEY, JSON.stringify(keep));
      else localStorage.removeItem(OUTBOX_KEY);
    } catch (e) { /* storage full or disabled: the in-memory outbox still retries */ }
  }
  function restore() {
    var saved;
    try { saved = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); } catch (e) { saved = []; }
    saved.forEach(function (o) {
      if (o.op === "create" && !moments.has(o.lid)) {
        var m = Object.assign({ lid: o.lid, id: null, version: 0, voice_url: null, unsaved: true, end_ms: null, peaks_ms: [], codes: [], ratings: {}, text: "", responds_to_id: null, phase: isRevealed ? "response" : "blind" }, o.body);
        moments.set(o.lid, m);
      } else if (!moments.has(o.lid)) {
        return; // the moment is gone (deleted elsewhere)
      }
      if (o.op === "patch") Object.assign(moments.get(o.lid), o.body, { unsaved: true });
      if (o.op === "answers") moments.get(o.lid).unsaved = true; // prompts.js shows them again
      if (o.op === "delete") moments.get(o.lid).deleted = true;
      outbox.push(o);
    });
  }

  function pendingFor(lid, kind) {
    for (var i = 0; i < outbox.length; i++) {
      var o = outbox[i];
      if (o.lid === lid && o.op === kind && !o.inflight) return o;
    }
    return null;
  }
  function enqueue(op) {
    if (locked) return;
    if (op.op === "patch") {
      var into = pendingFor(op.lid, "create") || pendingFor(op.lid, "patch");
      if (into) Object.assign(into.body, op.body);
      else outbox.push(op);
    } else if (op.op === "answers") {
      // one PUT per stop waits at a time, holding the latest value of each prompt; an answer
      // typed while one is in flight goes in a new PUT after it
      var waiting = pendingFor(op.lid, "answers");
      if (waiting) Object.assign(waiting.body, op.body);
      else outbox.push(op);
    } else if (op.op === "delete") {
      delete heldAnswers[op.lid];
      var create = pendingFor(op.lid, "create");
      var hasInflight = outbox.some(function (o) { return o.lid === op.lid && o.inflight; });
      if (create && !hasInflight) {
        outbox = outbox.filter(function (o) { return o.lid !== op.lid; });
        moments.delete(op.lid); // the server never had it
      } else {
        outbox = outbox.filter(function (o) { return o.lid !== op.lid || o.inflight; });
        outbox.push(op);
      }
    } else {
      outbox.push(op);
      if (op.op === "create" && heldAnswers[op.lid]) {
        outbox.push({ op: "answers", lid: op.lid, body: heldAnswers[op.lid] });
        delete heldAnswers[op.lid];
      }
    }
    persist();
    showStatus();
    pump();
  }

  function schedule() {
    window.clearTimeout(retryTimer);
    var delay = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt - 1, 5)));
    retryTimer = window.setTimeout(function () { retryTimer = null; pump(); }, delay);
  }
  function pump() {
    if (busy || paused || retryTimer || !outbox.length || endedOnce) { showStatus(); return; }
    busy = true;
    var op = outbox[0];
    op.inflight = true;
    showStatus();
    send(op).then(function () {
      outbox = outbox.filter(function (o) { return o !== op; });
      attempt = 0;
      var m = moments.get(op.lid);
      if (m) m.unsaved = outbox.some(function (o) { return o.lid === op.lid && o.op !== "voice"; });
    }, function (err) {
      op.inflight = false;
      if (err instanceof Retry) { attempt += 1; schedule(); return; }
      outbox = outbox.filter(function (o) { return o !== op; }); // retrying cannot help
      var reason = err && err.message ? err.message : String(err);
      if (!failure && !locked) failure = tpl(S.failed, { reason: reason });
      if (op.op === "answers") document.dispatchEvent(new CustomEvent("ipr:answers-failed", { detail: { lid: op.lid, reason: String(reason), sent: op.body } }));
      if (window.console) console.warn("recall: dropped operation", err);
    }).then(function () {
      busy = false;
      persist();
      renderMine();
      showStatus();
      if (!retryTimer) pump();
    });
  }
  function flush(timeoutMs) {
    return new Promise(function (resolve) {
      var start = Date.now();
      (function check() {
        if (!outbox.length) return resolve(true);
        if (Date.now() - start > timeoutMs) return resolve(false);
        if (retryTimer && !busy) { window.clearTimeout(retryTimer); retryTimer = null; pump(); }
        window.setTimeout(check, 150);
      })();
    });
  }

  function Fail(message) { this.message = message; }
  function handleCommon(res, op) {
    if (res.status === 409 && res.body && res.body.error && res.body.error.code === "locked") {
      locked = true;
      failure = S.locked;
      outbox = [];
      throw new Fail(S.locked);
    }
    if (res.status === 409 && res.body && res.body.error && res.body.error.code === "frozen") {
      var fm = moments.get(op.lid);
      if (fm) { fm.phase = "blind"; fm.deleted = false; }
      outbox = outbox.filter(function (o) { return o.lid !== op.lid || o === op; });
      failure = tpl(S.failed, { reason: res.body.error.message });
      if (editing && editing.lid === op.lid) closeForm(false);
      window.setTimeout(refresh, 0);
      throw new Fail(res.body.error.message);
    }
    if (res.status === 422 || res.status === 400 || res.status === 413) {
      var msg = (res.body && res.body.error && res.body.error.message) || String(res.status);
      failure = tpl(S.failed, { reason: msg });
      if (editing && editing.lid === op.lid) showFormError(msg);
      throw new Fail(msg);
    }
  }
  function adopt(m, server) {
    m.id = server.id;
    m.version = server.version;
    m.voice_url = server.voice_url || null;
    if (editing && editing.lid === m.lid) announce();
  }
  // The prompt panel (prompts.js) follows the moment being edited: which one, its id once the
  // server has it, and the answers this page has not sent yet (restored after a reload too).
  function announce() {
    var m = editing && moments.get(editing.lid);
    var detail = null;
    if (editing) {
      detail = { lid: editing.lid, id: m ? m.id : null, t_ms: editing.t_ms, label: fmt(editing.t_ms),
        answers: unsentAnswers(editing.lid), answers_state: answersStates()[editing.lid] || null };
    }
    document.dispatchEvent(new CustomEvent("recall:moment", { detail: detail }));
  }
  function saveOpenMoment() {
    if (!editing || moments.get(editing.lid)) return;
    var v = formValues();
    if (missingRating(v)) { showFormError(tpl(S.rating_needed, { name: missingRating(v).name })); return; }
    var m = Object.assign({ lid: editing.lid, id: null, version: 0, voice_url: null, unsaved: true }, v);
    moments.set(m.lid, m);
    var body = {};
    FIELDS.forEach(function (f) { if (v[f] !== null && v[f] !== undefined) body[f] = v[f]; });
    enqueue({ op: "create", lid: m.lid, key: editing.key, body: body });
  }
  // The prompt panel's answers go through this outbox like the moments: kept in localStorage,
  // retried with the same backoff, sent after their moment's create and in order (PUT: the
  // latest value of a prompt wins). A stop not saved yet is saved first.
  document.addEventListener("recall:answers", function (ev) {
    var d = ev.detail || {};
    if (!d.lid || !data.urls.answers || locked) return;
    if (!moments.get(d.lid) && editing && editing.lid === d.lid) saveOpenMoment();
    var m = moments.get(d.lid);
    if (!m) { // a required rating is missing: the moment's create brings them along
      heldAnswers[d.lid] = Object.assign(heldAnswers[d.lid] || {}, d.answers);
      showStatus();
      return;
    }
    m.unsaved = true;
    enqueue({ op: "answers", lid: d.lid, body: Object.assign({}, d.answers) });
    renderMine();
  });

  function send(op) {
    var m = moments.get(op.lid);
    if (op.op === "create") {
      return api("POST", data.urls.moments, { json: op.body, key: op.key }).then(function (res) {
        handleCommon(res, op);
        if (res.status !== 200 && res.status !== 201) throw new Fail(res.status);
        failure = null;
        var server = res.body;
        moments.forEach(function (other, lid) { if (other.id === server.id && lid !== op.lid) moments.delete(lid); });
        if (!m) return;
        adopt(m, server);
        document.dispatchEvent(new CustomEvent("ipr:moment-saved", { detail: { lid: op.lid, id: server.id } }));
        // A replayed key answers with what the server kept: send whatever differs now.
        var diff = {};
        FIELDS.forEach(function (f) { if (f !== "t_ms" && !same(server[f], m[f]) && !(f === "responds_to_id" && !m[f])) diff[f] = m[f]; });
        if (Object.keys(diff).length && !pendingFor(op.lid, "patch")) outbox.push({ op: "patch", lid: op.lid, body: diff });
      });
    }
    if (!m || !m.id) return Promise.resolve();
    if (op.op === "patch") {
      var body = Object.assign({}, op.body, { version: m.version });
      return api("PATCH", momentUrl(m.id), { json: body }).then(function (res) {
        handleCommon(res, op);
        if (res.status === 404) { moments.delete(op.lid); return; }
        if (res.status === 409 && res.body && res.body.moment) return resolveConflict(m, op, res.body.moment);
        if (res.status !== 200) throw new Fail(res.status);
        failure = null;
        adopt(m, res.body);
      });
    }
    if (op.op === "delete") {
      return api("DELETE", momentUrl(m.id)).then(function (res) {
        handleCommon(res, op);
        if (res.status !== 204 && res.status !== 404 && res.status !== 200) throw new Fail(res.status);
        failure = null;
        moments.delete(op.lid);
      });
    }
    if (op.op === "voice") {
      var form = new FormData();
      var ext = op.blob.type.indexOf("ogg") >= 0 ? "ogg" : "webm";
      form.append("audio", op.blob, "voice." + ext);
      return api("POST", voiceUrl(m.id), { form: form }).then(function (res) {
        handleCommon(res, op);
        if (res.status !== 201 && res.status !== 200) throw new Fail(res.status);
        failure = null;
        adopt(m, res.body);
        if (editing && editing.lid === op.lid) { voiceState(S.voice_saved); }
      });
    }
    if (op.op === "answers") {
      var answersUrl = data.urls.answers.replace("{moment_id}", m.id);
      return api("PUT", answersUrl, { json: { answers: op.body } }).then(function (res) {
        if (res.status === 404) return; // the moment was deleted elsewhere: its answers with it
        var err = (res.body && res.body.error) || {};
        if (res.status === 422) throw new Fail((err.problems || []).join("; ") || err.message || 422);
        handleCommon(res, op);
        if (res.status !== 200) throw new Fail(err.message || res.status);
        failure = null;
        document.dispatchEvent(new CustomEvent("ipr:answers-saved", { detail: { lid: op.lid, id: m.id, answers: res.body.answers, sent: op.body } }));
      });
    }
    if (op.op === "voice-delete") {
      return api("DELETE", voiceUrl(m.id)).then(function (res) {
        handleCommon(res, op);
        if (res.status !== 204 && res.status !== 404) throw new Fail(res.status);
        failure = null;
        m.voice_url = null;
      });
    }
    return Promise.resolve();
  }

  // Two tabs edited the same moment: show the saved version and let the participant choose.
  function resolveConflict(m, op, server) {
    paused = true;
    var dlg = $("conflict-dlg");
    $("conflict-theirs").textContent = server.text || S.no_text;
    $("conflict-mine").textContent = ("text" in op.body ? op.body.text : m.text) || S.no_text;
    return new Promise(function (resolve) {
      function done(choice) {
        $("conflict-mine-btn").removeEventListener("click", mine);
        $("conflict-theirs-btn").removeEventListener("click", theirs);
        dlg.removeEventListener("cancel", theirs);
        if (dlg.open) dlg.close();
        paused = false;
        if (choice === "mine") {
          m.version = server.version;
          outbox.splice(1, 0, { op: "patch", lid: op.lid, body: op.body });
        } else {
          var fresh = fromServer(server);
          fresh.lid = m.lid;
          Object.assign(m, fresh);
          if (editing && editing.lid === m.lid) fillForm(m);
        }
        resolve();
      }
      function mine() { done("mine"); }
      function theirs(ev) { if (ev) ev.preventDefault(); done("theirs"); }
      $("conflict-mine-btn").addEventListener("click", mine);
      $("conflict-theirs-btn").addEventListener("click", theirs);
      dlg.addEventListener("cancel", theirs);
      if (!dlg.open) dlg.showModal();
    });
  }

  // ---------------------------------------------------------------- player
  var video = $("video");
  var playBtn = $("play-btn");
  var seek = $("seek");
  var timeEl = $("time");
  var duration = data.recording.duration_ms || 0;
  var frameMs = data.recording.fps_num ? (1000 * data.recording.fps_den) / data.recording.fps_num : 40;
  var clipBtns = Array.prototype.slice.call(document.querySelectorAll(".clip-btn"));
  var currentClip = -1;

  function nowMs() { return Math.round(video.currentTime * 1000); }
  function atEnd() { return video.ended || (duration > 0 && nowMs() >= duration - 100); }
  // A time to store: the decoder's duration can run a few ms past the recording's.
  function markMs() { return duration ? Math.min(nowMs(), duration) : nowMs(); }
  function seekTo(ms) {
    var max = duration || Math.round((video.duration || 0) * 1000);
    video.currentTime = Math.max(0, Math.min(ms, max)) / 1000;
    tick();
  }
  function togglePlay() {
    if (video.paused) video.play().catch(function () {});
    else video.pause();
  }
  function step(frames) {
    video.pause();
    seekTo(nowMs() + frames * frameMs);
  }
  function clipIndexAt(ms) {
    var idx = 0;
    for (var i = 0; i < data.clips.length; i++) if (data.clips[i] <= ms) idx = i;
    return idx;
  }
  function tick() {
    var ms = nowMs();
    timeEl.textContent = fmt(ms) + " / " + fmt(duration);
    if (document.activeElement !== seek) seek.value = String(ms);
    if (data.clips.length) {
      var idx = clipIndexAt(ms);
      if (idx !== currentClip) {
        currentClip = idx;
        clipBtns.forEach(function (b, i) {
          if (i === idx) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
          b.classList.toggle("seen", i < idx);
          b.querySelector(".clip-bar").style.width = i < idx ? "100%" : "0";
        });
        $("clip-progress").textContent = tpl(S.clip_of, { n: idx + 1, total: data.clips.length });
        var strip = $("clip-strip"), btn = clipBtns[idx];
        if (btn && strip.scrollWidth > strip.clientWidth) {
          strip.scrollLeft = btn.offsetLeft - strip.offsetLeft - strip.clientWidth / 2 + btn.offsetWidth / 2;
        }
      }
      var start = data.clips[idx], end = data.clip_ends[idx];
      var frac = end > start ? Math.min(1, (ms - start) / (end - start)) : 0;
      if (clipBtns[idx]) clipBtns[idx].querySelector(".clip-bar").style.width = (frac * 100).toFixed(1) + "%";
    }
    highlightCurrent(ms);
  }
  function syncPlayButton() {
    var playing = !video.paused;
    playBtn.querySelector(".icon").textContent = playing ? "❚❚" : "▶";
    playBtn.setAttribute("aria-label", playing ? S.pause : S.play);
  }

  // Where the participant is, so that coming back resumes there.
  var lastSentPos = -1, lastSentAt = 0;
  function sendPosition(force) {
    if (locked || endedOnce) return;
    var ms = nowMs();
    if (!force && (Date.now() - lastSentAt < 5000 || ms === lastSentPos)) return;
    if (ms === lastSentPos) return;
    lastSentPos = ms; lastSentAt = Date.now();
    api("POST", data.urls.position, { json: { t_ms: ms }, keepalive: true }).catch(function () {});
  }

  video.addEventListener("timeupdate", function () { tick(); if (!video.paused) sendPosition(false); });
  video.addEventListener("seeked", tick);
  video.addEventListener("play", syncPlayButton);
  video.addEventListener("pause", function () { syncPlayButton(); sendPosition(true); });
  var resumed = false;
  function onMetadata() {
    if (!duration) duration = Math.round(video.duration * 1000);
    if (!resumed && data.rs.last_position_ms > 0 && video.currentTime === 0) seekTo(data.rs.last_position_ms);
    resumed = true;
    tick();
  }
  video.addEventListener("loadedmetadata", onMetadata);
  if (video.readyState >= 1) onMetadata(); // the metadata may have arrived before this script ran
  playBtn.addEventListener("click", togglePlay);
  video.addEventListener("click", togglePlay);
  $("back-btn").addEventListener("click", function () { seekTo(nowMs() - 5000); });
  $("fwd-btn").addEventListener("click", function () { seekTo(nowMs() + 5000); });
  $("frame-back-btn").addEventListener("click", function () { step(-1); });
  $("frame-fwd-btn").addEventListener("click", function () { step(1); });
  $("speed").addEventListener("change", function () { video.playbackRate = parseFloat(this.value); });
  seek.addEventListener("input", function () { seekTo(parseInt(seek.value, 10)); });
  clipBtns.forEach(function (b) {
    b.addEventListener("click", function () { seekTo(parseInt(b.getAttribute("data-start-ms"), 10)); });
  });
  $("prev-clip").addEventListener("click", function () {
    var idx = clipIndexAt(nowMs());
    var target = nowMs() - data.clips[idx] > 2000 ? idx : Math.max(0, idx - 1);
    if (data.clips.length) seekTo(data.clips[target]);
  });
  $("next-clip").addEventListener("click", function () {
    var idx = clipIndexAt(nowMs());
    if (idx + 1 < data.clips.length) seekTo(data.clips[idx + 1]);
  });
  window.addEventListener("pagehide", function () { sendPosition(true); });

  // ---------------------------------------------------------------- instructions first
  var intro = $("intro"), area = $("player-area");
  $("start-btn").addEventListener("click", function () {
    intro.hidden = true;
    area.hidden = false;
    window.scrollTo(0, 0); // the instructions were long: the video starts at the top
    playBtn.focus({ preventScroll: true });
  });
  $("again-btn").addEventListener("click", function () {
    video.pause();
    area.hidden = true;
    intro.hidden = false;
    $("intro-h").setAttribute("tabindex", "-1");
    $("intro-h").focus();
  });

  // ---------------------------------------------------------------- the mark form
  var form = $("mark-form"), lists = $("lists"), textEl = $("m-text");
  var markBtn = $("mark-btn");
  var editing = null; // {lid, t_ms, end_ms, peaks_ms, responds_to_id, key, isNew}
  var textTimer = null;

  function showFormError(msg) {
    var e = $("form-error");
    e.textContent = msg;
    e.hidden = !msg;
  }
  function formValues() {
    var ratings = {};
    scales.forEach(function (sc) {
      var r = sc.el.querySelector("input:checked");
      if (r) ratings[sc.key] = parseInt(r.value, 10);
    });
    var codes = Array.prototype.map.call(form.querySelectorAll("input[name=code]:checked"), function (c) {
      return parseInt(c.value, 10);
    });
    return {
      // Peaks belong to a span: until its end is known they wait in the form (see settleSpan).
      t_ms: editing.t_ms, end_ms: editing.end_ms, peaks_ms: editing.end_ms != null ? editing.peaks_ms.slice() : [],
      text: textEl.value, codes: codes, ratings: ratings, responds_to_id: editing.responds_to_id,
    };
  }
  function missingRating(values) {
    for (var i = 0; i < scales.length; i++) {
      if (scales[i].required && !(scales[i].key in values.ratings)) return scales[i];
    }
    return null;
  }
  function showChosen(sc) {
    var r = sc.el.querySelector("input:checked");
    sc.el.querySelector(".chosen").textContent = r ? r.value + (r.getAttribute("data-label") ? " · " + r.getAttribute("data-label") : "") : "";
  }
  function renderPeaks() {
    var ul = $("peaks");
    ul.textContent = "";
    editing.peaks_ms.forEach(function (p, i) {
      var li = el("li");
      var b = button("quiet small", "✦ " + fmt(p) + " ×");
      b.setAttribute("aria-label", tpl(S.remove_peak, { time: fmt(p) }));
      b.addEventListener("click", function () { editing.peaks_ms.splice(i, 1); renderPeaks(); commit(); });
      li.appendChild(b);
      ul.appendChild(li);
    });
  }
  function fillForm(m) {
    editing.end_ms = m.end_ms; editing.peaks_ms = (m.peaks_ms || []).slice();
    textEl.value = m.text || "";
    scales.forEach(function (sc) {
      sc.el.querySelectorAll("input").forEach(function (r) { r.checked = m.ratings && String(m.ratings[sc.key]) === r.value; });
      showChosen(sc);
    });
    form.querySelectorAll("input[name=code]").forEach(function (c) { c.checked = (m.codes || []).indexOf(parseInt(c.value, 10)) >= 0; });
    $("m-end").value = m.end_ms != null ? fmt(m.end_ms) : "";
    $("span-box").open = m.end_ms != null || (m.peaks_ms || []).length > 0;
    renderPeaks();
    var audio = $("voice-audio");
    if (m.voice_url) { audio.src = m.voice_url; audio.hidden = false; $("voice-remove").hidden = false; }
    else if (!editing.voiceBlob) { audio.removeAttribute("src"); audio.hidden = true; $("voice-remove").hidden = true; }
  }
  function openForm(opts) {
    if (locked) return;
    if (editing) closeForm(true);
    var m = opts.lid ? moments.get(opts.lid) : null;
    var key = m ? null : uuid();
    // a stop: the interview recorder (interview_recorder.js) logs it before the video pauses
    document.dispatchEvent(new CustomEvent("ipr:mark", { detail: { lid: m ? m.lid : "l-" + key, id: m ? m.id : null, t_ms: m ? m.t_ms : opts.t_ms } }));
    video.pause();
    editing = {
      lid: m ? m.lid : "l-" + key, key: key, isNew: !m,
      t_ms: m ? m.t_ms : opts.t_ms, end_ms: null, peaks_ms: [],
      responds_to_id: m ? m.responds_to_id : opts.responds_to_id || null, voiceBlob: null,
    };
    fillForm(m || { text: "", ratings: {}, codes: [], end_ms: null, peaks_ms: [] });
    $("form-title").textContent = editing.responds_to_id ? S.respond_moment : m ? S.edit_moment : S.new_moment;
    $("form-at").textContent = tpl(S.at, { time: fmt(editing.t_ms) });
    var other = editing.responds_to_id && (revealed || []).find(function (o) { return o.id === editing.responds_to_id; });
    $("form-responds").hidden = !other;
    if (other) $("form-responds").textContent = tpl(S.responds_to, { time: fmt(other.t_ms) }) + ": “" + (other.text || "").trim() + "”";
    showFormError("");
    voiceState("");
    form.hidden = false;
    lists.hidden = true;
    document.body.classList.add("is-editing");
    if (m) seekTo(m.t_ms);
    // On a phone the form is a sheet over the bottom of the screen: bring the video back on top.
    var sheet = window.matchMedia("(max-width: 599px)").matches;
    if (sheet) {
      window.scrollTo(0, 0);
      // The sheet leaves the video and its Play button in sight, so one can play on to an end.
      var free = window.innerHeight - $("play-btn").getBoundingClientRect().bottom - 8;
      form.style.maxHeight = Math.round(Math.max(window.innerHeight * 0.5, free)) + "px";
    } else {
      form.style.maxHeight = "";
    }
    textEl.focus({ preventScroll: sheet });
    announce();
  }
  // Send whatever changed; a new moment is created once it has something in it.
  function commit() {
    if (!editing) return;
    window.clearTimeout(textTimer);
    var v = formValues();
    var m = moments.get(editing.lid);
    if (!m) {
      var hasContent = v.text.trim() || Object.keys(v.ratings).length || v.codes.length || editing.voiceBlob;
      if (!hasContent || missingRating(v)) return;
      m = Object.assign({ lid: editing.lid, id: null, version: 0, voice_url: null, unsaved: true }, v);
      moments.set(m.lid, m);
      var body = {};
      FIELDS.forEach(function (f) { if (v[f] !== null && v[f] !== undefined) body[f] = v[f]; });
      enqueue({ op: "create", lid: m.lid, key: editing.key, body: body });
    } else {
      var diff = {};
      FIELDS.forEach(function (f) { if (f !== "t_ms" && f !== "responds_to_id" && !same(v[f], m[f])) diff[f] = v[f]; });
      if (!Object.keys(diff).length) return;
      Object.assign(m, diff);
      m.unsaved = true;
      enqueue({ op: "patch", lid: m.lid, body: diff });
    }
    renderMine();
  }
  // Peaks were added while playing on but no end was set: the moment lasted at least until
  // the furthest of now and its last peak, so that is its end (the peaks are never lost).
  function settleSpan() {
    if (!editing || editing.end_ms != null || !editing.peaks_ms.length) return;
    var end = Math.max(markMs(), editing.peaks_ms[editing.peaks_ms.length - 1]);
    editing.end_ms = end;
    $("m-end").value = fmt(end);
  }
  function closeForm(keep) {
    if (!editing) return;
    if (keep) { settleSpan(); commit(); }
    // answers typed a moment ago reach the outbox while this stop is still the open one
    document.dispatchEvent(new CustomEvent("recall:closing"));
    window.clearTimeout(textTimer);
    stopRecording(true);
    editing = null;
    announce();
    form.hidden = true;
    lists.hidden = false;
    document.body.classList.remove("is-editing");
    renderMine();
    if (markBtn) markBtn.focus();
  }

  form.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });
  textEl.addEventListener("input", function () {
    window.clearTimeout(textTimer);
    textTimer = window.setTimeout(commit, 800);
  });
  scales.forEach(function (sc) {
    sc.el.addEventListener("change", function () { showChosen(sc); showFormError(""); commit(); });
  });
  form.querySelectorAll("input[name=code]").forEach(function (c) { c.addEventListener("change", commit); });
  function setEnd(ms) {
    editing.end_ms = ms;
    editing.peaks_ms = editing.peaks_ms.filter(function (p) { return ms != null && p >= editing.t_ms && p <= ms; });
    renderPeaks();
    commit();
  }
  $("end-now").addEventListener("click", function () {
    var ms = markMs();
    if (ms <= editing.t_ms) { showFormError(tpl(S.end_before_start, { time: fmt(editing.t_ms) })); return; }
    showFormError("");
    setEnd(ms);
    $("m-end").value = fmt(ms);
  });
  $("m-end").addEventListener("change", function () {
    var raw = this.value.trim();
    if (!raw) { showFormError(""); setEnd(null); return; }
    var ms = parseTime(raw);
    if (ms == null) { showFormError(S.bad_time); return; }
    if (ms <= editing.t_ms) { showFormError(tpl(S.end_before_start, { time: fmt(editing.t_ms) })); return; }
    showFormError("");
    setEnd(ms);
  });
  $("peak-now").addEventListener("click", function () {
    var ms = markMs();
    // Before an end is set the participant plays on: a peak then only has to come after the start.
    if (ms < editing.t_ms || (editing.end_ms != null && ms > editing.end_ms)) { showFormError(S.peak_needs_end); return; }
    showFormError("");
    if (editing.peaks_ms.indexOf(ms) < 0) editing.peaks_ms.push(ms);
    editing.peaks_ms.sort(function (a, b) { return a - b; });
    renderPeaks();
    commit();
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var v = formValues();
    var missing = missingRating(v);
    if (missing) {
      showFormError(tpl(S.rating_needed, { name: missing.name }));
      missing.el.querySelector("input").focus();
      return;
    }
    settleSpan();
    commit();
    // At the end of the recording playing again would start it over from 0:00.
    var resume = data.resume_after_save && !atEnd();
    closeForm(false);
    if (resume) video.play().catch(function () {});
  });
  $("cancel-btn").addEventListener("click", function () { closeForm(true); });

  if (markBtn) markBtn.addEventListener("click", function () { openForm({ t_ms: markMs() }); });

  // ---------------------------------------------------------------- voice notes
  var recorder = null, recChunks = [], recStream = null;
  function voiceState(text) { $("voice-state").textContent = text; }
  function pickType() {
    var types = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/ogg"];
    for (var i = 0; i < types.length; i++) if (window.MediaRecorder && MediaRecorder.isTypeSupported(types[i])) return types[i];
    return "";
  }
  function stopRecording(discard) {
    if (!recorder) return;
    recorder.discard = discard;
    if (recorder.state !== "inactive") recorder.stop();
  }
  $("voice-rec").addEventListener("click", function () {
    if (!navigator.mediaDevices || !window.MediaRecorder) { voiceState(S.no_mic); return; }
    var forLid = editing.lid;
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      recStream = stream;
      recChunks = [];
      var type = pickType();
      recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      recorder.addEventListener("dataavailable", function (ev) { if (ev.data.size) recChunks.push(ev.data); });
      recorder.addEventListener("stop", function () {
        var discard = recorder.discard;
        recStream.getTracks().forEach(function (t) { t.stop(); });
        var blob = new Blob(recChunks, { type: (recorder.mimeType || "audio/webm").split(";")[0] });
        recorder = null;
        $("voice-rec").hidden = false;
        $("voice-stop").hidden = true;
        if (discard || !editing || editing.lid !== forLid || !blob.size) return;
        editing.voiceBlob = blob;
        var audio = $("voice-audio");
        audio.src = URL.createObjectURL(blob);
        audio.hidden = false;
        $("voice-remove").hidden = false;
        voiceState(S.recorded);
        commit(); // make sure the moment exists before its voice note
        if (!moments.get(forLid)) {
          var v = formValues();
          var m = Object.assign({ lid: forLid, id: null, version: 0, voice_url: null, unsaved: true }, v);
          moments.set(forLid, m);
          var body = {};
          FIELDS.forEach(function (f) { if (v[f] !== null && v[f] !== undefined) body[f] = v[f]; });
          enqueue({ op: "create", lid: forLid, key: editing.key, body: body });
        }
        enqueue({ op: "voice", lid: forLid, blob: blob });
        $("voice-rec").focus();
      });
      recorder.start();
      $("voice-rec").hidden = true;
      $("voice-stop").hidden = false;
      $("voice-stop").focus();
      voiceState(S.recording);
    }, function () { voiceState(S.no_mic); });
  });
  $("voice-stop").addEventListener("click", function () { stopRecording(false); });
  $("voice-remove").addEventListener("click", function () {
    var lid = editing.lid;
    var pending = outbox.filter(function (o) { return o.lid === lid && o.op === "voice" && !o.inflight; });
    outbox = outbox.filter(function (o) { return pending.indexOf(o) < 0; });
    var m = moments.get(lid);
    if (m && (m.voice_url || outbox.some(function (o) { return o.lid === lid && o.op === "voice"; }))) enqueue({ op: "voice-delete", lid: lid });
    if (m) m.voice_url = null;
    editing.voiceBlob = null;
    var audio = $("voice-audio");
    audio.removeAttribute("src");
    audio.hidden = true;
    $("voice-remove").hidden = true;
    voiceState("");
    $("voice-rec").focus();
    persist();
    showStatus();
  });

  // ---------------------------------------------------------------- lists
  var mine = $("mine");
  function ratingText(m) {
    return scales.filter(function (sc) { return m.ratings && m.ratings[sc.key] != null; }).map(function (sc) {
      var v = m.ratings[sc.key];
      var label = sc.labels[v] ? v + " · " + sc.labels[v] : String(v);
      return { text: label, title: sc.name + ": " + label };
    });
  }
  function momentItem(m, own) {
    var li = el("li", "moment" + (own && m.unsaved ? " unsaved" : ""));
    li.setAttribute("data-t", m.t_ms);
    if (own) li.setAttribute("data-lid", m.lid);
    // A moment that cannot be opened in the form (the other person's, or one's own once it is
    // finished or frozen) is shown whole: the list is the only place to read it.
    var whole = !own || locked || (frozenBlind && m.phase === "blind");
    var text = (m.text || "").trim();
    var words = text ? (whole ? text : firstWords(m.text, 140)) : S.no_text;
    var jump = button("jump");
    jump.appendChild(el("span", "t", fmt(m.t_ms)));
    jump.appendChild(el("span", whole ? "words whole" : "words", words));
    jump.setAttribute("aria-label", tpl(S.jump, { time: fmt(m.t_ms) }) + ": " + words);
    jump.addEventListener("click", function () { seekTo(m.t_ms); });
    li.appendChild(jump);
    var meta = el("div", "meta");
    if (m.end_ms != null) meta.appendChild(el("span", "", tpl(S.until, { time: fmt(m.end_ms) })));
    ratingText(m).forEach(function (r) { var s = el("span", "rating", r.text); s.title = r.title; s.setAttribute("aria-label", r.title); meta.appendChild(s); });
    if (m.voice_url || (own && outbox.some(function (o) { return o.lid === m.lid && o.op === "voice"; }))) meta.appendChild(el("span", "voice-chip", S.voice_note));
    if (own && m.responds_to_id) meta.appendChild(el("span", "", "↩ " + tpl(S.responds_to, { time: fmt(((revealed || []).find(function (o) { return o.id === m.responds_to_id; }) || {}).t_ms) })));
    else if (own && m.phase === "response") meta.appendChild(el("span", "phase-chip", S.second_look));
    if (!own && m.phase === "response") meta.appendChild(el("span", "phase-chip", S.their_response));
    if (own && m.unsaved) meta.appendChild(el("span", "unsaved-note", S.not_saved));
    if (meta.childNodes.length) li.appendChild(meta);
    var acts = el("div", "acts");
    if (own && !locked && !(frozenBlind && m.phase === "blind")) {
      var edit = button("quiet", S.edit);
      edit.setAttribute("aria-label", S.edit + " " + fmt(m.t_ms));
      edit.addEventListener("click", function () { openForm({ lid: m.lid }); });
      var del = button("quiet danger", S.delete);
      del.setAttribute("aria-label", S.delete + " " + fmt(m.t_ms));
      del.addEventListener("click", function () { confirmDelete(li, m, acts); });
      acts.appendChild(edit);
      acts.appendChild(del);
    } else if (!own && !locked) {
      var respond = button("quiet", S.respond);
      respond.setAttribute("aria-label", S.respond + " " + fmt(m.t_ms));
      respond.addEventListener("click", function () { openForm({ t_ms: m.t_ms, responds_to_id: m.id }); });
      acts.appendChild(respond);
    }
    if (acts.childNodes.length) li.appendChild(acts);
    return li;
  }
  function confirmDelete(li, m, acts) {
    acts.textContent = "";
    acts.appendChild(el("span", "confirm-q", S.delete_q));
    var yes = button("quiet danger", S.delete_yes);
    var no = button("quiet", S.keep);
    yes.addEventListener("click", function () {
      m.deleted = true; // hidden now, forgotten once the server has the delete
      enqueue({ op: "delete", lid: m.lid });
      renderMine();
      (markBtn || playBtn).focus();
    });
    no.addEventListener("click", function () { renderMine(); var again = mine.querySelector('[data-lid="' + m.lid + '"] .danger'); if (again) again.focus(); });
    acts.appendChild(yes);
    acts.appendChild(no);
    no.focus();
  }
  function sorted(list) { return list.slice().sort(function (a, b) { return a.t_ms - b.t_ms; }); }
  function renderMine() {
    var list = sorted(Array.from(moments.values()).filter(function (m) { return !m.deleted; }));
    mine.textContent = "";
    list.forEach(function (m) { mine.appendChild(momentItem(m, true)); });
    $("mine-empty").hidden = list.length > 0;
    $("mine-count").textContent = list.length ? tpl(S.count, { n: list.length }) : "";
    renderOther();
    highlightCurrent(nowMs());
  }
  var otherRendered = false;
  function renderOther() {
    var ol = $("other");
    if (!ol || otherRendered) return;
    otherRendered = true;
    sorted(revealed || []).forEach(function (m) { ol.appendChild(momentItem(m, false)); });
  }
  // R responds to the other person's moment at the playhead, or else the latest one before it.
  function respondTarget(ms) {
    var list = sorted(revealed || []);
    var near = list.filter(function (o) { return Math.abs(o.t_ms - ms) < 1500; });
    if (near.length) return near[0];
    var before = list.filter(function (o) { return o.t_ms <= ms; });
    return before.length ? before[before.length - 1] : list[0] || null;
  }
  function highlightCurrent(ms) {
    document.querySelectorAll(".moment").forEach(function (li) {
      var t = parseInt(li.getAttribute("data-t"), 10);
      li.classList.toggle("current", Math.abs(t - ms) < 1500);
    });
  }

  // Another tab may have changed things: refresh what has nothing pending here.
  function refresh() {
    if (outbox.length || editing || locked) return;
    api("GET", data.urls.moments).then(function (res) {
      if (res.status !== 200 || !res.body || outbox.length || editing) return;
      var next = new Map();
      res.body.moments.forEach(function (sm) { var x = fromServer(sm); next.set(x.lid, x); });
      moments = next;
      renderMine();
    }).catch(function () {});
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") refresh(); });

  // ---------------------------------------------------------------- break, stop, finish
  var breakDlg = $("break-dlg"), wasPlaying = false;
  if ($("break-btn")) $("break-btn").addEventListener("click", function () {
    wasPlaying = !video.paused;
    video.pause();
    breakDlg.showModal();
    $("continue-btn").focus();
  });
  $("continue-btn").addEventListener("click", function () {
    breakDlg.close();
    if (wasPlaying) video.play().catch(function () {});
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("dialog").close(); });
  });
  if ($("stop-btn")) $("stop-btn").addEventListener("click", function () {
    video.pause();
    $("stop-pending").hidden = true;
    $("stop-dlg").showModal();
  });
  $("stop-form").addEventListener("submit", function (ev) {
    if (editing) closeForm(true);
    sendPosition(true);
    if (!outbox.length) return;
    ev.preventDefault();
    $("stop-pending").hidden = false;
    var f = this;
    flush(15000).then(function () { f.submit(); });
  });
  var finishBtn = $("finish-btn");
  if (finishBtn) {
    finishBtn.addEventListener("click", function () {
      video.pause();
      if (editing) closeForm(true);
      $("finish-dlg").showModal();
    });
    $("finish-yes").addEventListener("click", function () {
      var yes = this;
      yes.disabled = true;
      flush(15000).then(function () {
        return api("POST", data.urls.finish, { json: {} });
      }).then(function (res) {
        if (res.status === 200 || (res.body && res.body.error && res.body.error.code === "locked")) {
          try { localStorage.removeItem(OUTBOX_KEY); } catch (e) { /* nothing to clean */ }
          window.location.reload();
          return;
        }
        yes.disabled = false;
        failure = tpl(S.failed, { reason: (res.body && res.body.error && res.body.error.message) || res.status });
        showStatus();
        $("finish-dlg").close();
      }, function () {
        yes.disabled = false;
        attempt = Math.max(attempt, 1);
        showStatus();
      });
    });
  }
  // Back online: what waits in the outbox goes now, not after the rest of its backoff.
  window.addEventListener("online", function () {
    if (retryTimer && !busy) { window.clearTimeout(retryTimer); retryTimer = null; pump(); }
  });
  window.addEventListener("beforeunload", function (ev) {
    if (outbox.length && !endedOnce) { ev.preventDefault(); ev.returnValue = ""; }
  });

  // ---------------------------------------------------------------- keyboard
  function isTyping(t) {
    if (!t || !t.matches) return false;
    return t.matches("textarea, select, [contenteditable], input:not([type]), input[type=text], input[type=number], input[type=search]");
  }
  function anyModalOpen() {
    return Array.prototype.some.call(document.querySelectorAll("dialog"), function (d) { return d.open; });
  }
  var swallowSpaceUp = false;
  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (anyModalOpen() || area.hidden) return;
    if (ev.key === "Escape") {
      if (editing) { ev.preventDefault(); closeForm(true); }
      return;
    }
    if (isTyping(t)) return;
    var inForm = form.contains(t);
    var key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (editing && key.length === 1 && key !== " ") {
      var box = Array.prototype.find.call(form.querySelectorAll("input[name=code]"), function (c) { return c.getAttribute("data-shortcut") === key; });
      if (box) { ev.preventDefault(); box.checked = !box.checked; commit(); return; }
    }
    if (key === " ") {
      if (inForm || t.matches("input[type=radio], input[type=checkbox], summary, audio")) return;
      ev.preventDefault();
      if (t.matches("button, a")) swallowSpaceUp = true;
      togglePlay();
    } else if (key === "m") {
      if (!editing && !locked && markBtn) { ev.preventDefault(); openForm({ t_ms: markMs() }); }
    } else if (key === "r") {
      var target = !editing && !locked && respondTarget(nowMs());
      if (target) { ev.preventDefault(); openForm({ t_ms: target.t_ms, responds_to_id: target.id }); }
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      if (t.matches("input[type=radio], input[type=range]")) return;
      ev.preventDefault();
      seekTo(nowMs() + (key === "ArrowLeft" ? -5000 : 5000));
    } else if (key === ",") {
      ev.preventDefault(); step(-1);
    } else if (key === ".") {
      ev.preventDefault(); step(1);
    }
  });
  document.addEventListener("keyup", function (ev) {
    if (ev.key === " " && swallowSpaceUp) { swallowSpaceUp = false; ev.preventDefault(); }
  });

  // ---------------------------------------------------------------- start
  restore();
  renderMine();
  syncPlayButton();
  tick();
  showStatus();
  pump();
})();
