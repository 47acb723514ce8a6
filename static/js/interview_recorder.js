// The recall interview recorder (researcher-led sessions): MediaRecorder with a level meter and
// a visible recording indicator; the audio goes up in chunks while it is recorded, each at its
// byte offset, kept in memory (and IndexedDB) until the server has it, retried with backoff; the
// player events are logged with both clocks (audio_ms on the interview audio, video_ms on the
// video) and sent beside the chunks. Server: ipr/web/api_interview_chunks.py.
(function () {
  "use strict";
  var node = document.getElementById("iv-data");
  var video = document.getElementById("video");
  if (!node || !video) return;
  var data = JSON.parse(node.textContent);
  var S = data.strings;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var $ = function (id) { return document.getElementById(id); };
  var box = $("iv-rec");
  var TIMESLICE_MS = 2000;

  function tpl(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, k) { return k in values ? values[k] : all; });
  }
  function clock(ms) {
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }
  function request(method, url, opts) {
    opts = opts || {};
    var headers = Object.assign({ "X-CSRFToken": csrf, Accept: "application/json" }, opts.headers || {});
    var body = opts.body;
    if (opts.json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(opts.json); }
    return fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin" }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (b) { return { status: resp.status, body: b }; });
    });
  }
  function takeUrl(take) { return data.urls.takes + "/" + take; }

  // --- state -------------------------------------------------------------------------------
  var stream = null, recorder = null, audioCtx = null, analyser = null;
  var take = null, state = "idle";
  var acc = 0, since = null; // the audio clock: ms recorded so far (pauses excluded)
  var queue = []; // {off, blob} not yet confirmed by the server
  var nextOff = 0, confirmed = 0, inflight = false, backoff = 0, retryTimer = null, offline = false;
  var events = []; // {type, video_ms, audio_ms, moment_id?, lid?}
  var eventsTimer = null, eventsDirty = false;
  var pendingLids = {}; // lid of an unsaved new moment -> its mark events

  function audioMs() { return Math.round(acc + (since !== null ? performance.now() - since : 0)); }
  function videoMs() { return Math.round(video.currentTime * 1000); }
  window.iprInterview = { // read by the end-to-end test and by nothing else
    events: function () { return events.slice(); },
    audioMs: audioMs,
    state: function () { return state; },
    take: function () { return take; },
    queued: function () { return queue.length; },
  };

  function show(newState) {
    state = newState;
    box.setAttribute("data-state", state);
    document.body.classList.toggle("iv-recording", state === "recording");
    var text = S[state] || S.idle;
    if (state === "done") text = acc ? tpl(S.done, { time: clock(acc) }) : S.saved;
    if (state !== "failed") $("iv-indicator-text").textContent = text;
    $("iv-start").hidden = !(state === "idle" || state === "done" || state === "failed");
    $("iv-pause").hidden = state !== "recording";
    $("iv-resume").hidden = state !== "paused";
    $("iv-stop").hidden = !(state === "recording" || state === "paused");
  }
  function showUpload() {
    var n = queue.length;
    var text = !take ? "" : n === 0 ? S.uploaded : tpl(offline ? S.offline : S.waiting, { n: n });
    $("iv-upload").textContent = text;
  }
  function fail(reason) {
    show("failed");
    $("iv-indicator-text").textContent = tpl(S.failed, { reason: reason });
  }

  // --- events (both clocks) ------------------------------------------------------------------
  function active() { return state === "recording" || state === "paused"; }
  function log(type, extra) {
    if (!active()) return null;
    var ev = Object.assign({ type: type, video_ms: videoMs(), audio_ms: audioMs() }, extra || {});
    events.push(ev);
    scheduleEvents();
    return ev;
  }
  function sendable() {
    return events.filter(function (e) { return !e.lid || e.moment_id; }).map(function (e) {
      var out = { type: e.type, video_ms: e.video_ms, audio_ms: e.audio_ms };
      if (e.moment_id) out.moment_id = e.moment_id;
      return out;
    });
  }
  function scheduleEvents() {
    eventsDirty = true;
    if (eventsTimer) return;
    eventsTimer = window.setTimeout(sendEvents, 1000);
  }
  function sendEvents() {
    eventsTimer = null;
    if (!take || !eventsDirty || state === "finishing") return;
    eventsDirty = false;
    request("PUT", takeUrl(take) + "/events", { json: { events: sendable() } }).then(function (res) {
      if (res.status !== 200) { eventsDirty = true; eventsTimer = window.setTimeout(sendEvents, 5000); }
    }, function () { eventsDirty = true; eventsTimer = window.setTimeout(sendEvents, 5000); });
  }
  video.addEventListener("play", function () { log("play"); });
  video.addEventListener("pause", function () { log("pause"); });
  video.addEventListener("seeked", function () { log("seek"); });
  // recall.js: a stop opens the moment's form (before the video pauses) ...
  document.addEventListener("ipr:mark", function (ev) {
    var d = ev.detail || {};
    var e = log("mark", d.id ? { moment_id: d.id, video_ms: d.t_ms } : { lid: d.lid, video_ms: d.t_ms });
    if (e && !d.id) (pendingLids[d.lid] = pendingLids[d.lid] || []).push(e);
  });
  // ... and a new moment gets its id once saved (perhaps much later, after an outage)
  document.addEventListener("ipr:moment-saved", function (ev) {
    var d = ev.detail || {};
    (pendingLids[d.lid] || []).forEach(function (e) { e.moment_id = d.id; });
    delete pendingLids[d.lid];
    if (take) scheduleEvents();
  });

  // --- chunks ------------------------------------------------------------------------------
  var idb = null;
  (function openStore() {
    if (!window.indexedDB) return;
    var req = indexedDB.open("ipr-interview", 1);
    req.onupgradeneeded = function () { req.result.createObjectStore("chunks"); };
    req.onsuccess = function () { idb = req.result; };
  })();
  function keep(item) {
    if (!idb) return;
    try { idb.transaction("chunks", "readwrite").objectStore("chunks").put(item.blob, [take, item.off]); } catch (e) { /* memory still has it */ }
  }
  function forget(item, t) {
    if (!idb) return;
    try { idb.transaction("chunks", "readwrite").objectStore("chunks").delete([t, item.off]); } catch (e) { /* gone already */ }
  }
  function kept(t) {
    return new Promise(function (resolve) {
      if (!idb) { resolve([]); return; }
      var out = [];
      var range = IDBKeyRange.bound([t, 0], [t, Number.MAX_SAFE_INTEGER]);
      var req = idb.transaction("chunks").objectStore("chunks").openCursor(range);
      req.onsuccess = function () {
        var c = req.result;
        if (!c) { resolve(out); return; }
        out.push({ off: c.key[1], blob: c.value });
        c.continue();
      };
      req.onerror = function () { resolve(out); };
    });
  }

  function enqueue(blob) {
    if (!blob || !blob.size) return;
    var item = { off: nextOff, blob: blob };
    nextOff += blob.size;
    queue.push(item);
    keep(item);
    showUpload();
    pump();
  }
  function settle(offset) {
    confirmed = Math.max(confirmed, offset);
    var t = take;
    queue = queue.filter(function (q) {
      var done = q.off + q.blob.size <= confirmed;
      if (done) forget(q, t);
      return !done;
    });
  }
  function retryLater() {
    backoff = Math.min(backoff ? backoff * 2 : 1000, 15000);
    window.clearTimeout(retryTimer);
    retryTimer = window.setTimeout(pump, backoff);
    showUpload();
  }
  function pump() {
    if (inflight || !take || !queue.length) { showUpload(); return; }
    var item = queue[0];
    // a piece the server has in part is sent from where the server ends
    var skip = Math.max(0, confirmed - item.off);
    inflight = true;
    request("PATCH", takeUrl(take), {
      headers: { "Upload-Offset": String(item.off + skip), "Content-Type": "application/octet-stream" },
      body: item.blob.slice(skip),
    }).then(function (res) {
      inflight = false;
      if (res.status === 200) { offline = false; backoff = 0; settle(res.body.offset); pump(); return; }
      if (res.status === 409 && res.body.error && res.body.error.code === "offset_mismatch") {
        settle(res.body.error.offset); // the server says where it ends: go on from there
        if (res.body.error.offset < (queue[0] ? queue[0].off : nextOff)) { fail(res.body.error.message); return; }
        pump();
        return;
      }
      if (res.status === 401) { $("iv-upload").textContent = S.login; retryLater(); return; }
      if (res.status >= 500 || res.status === 429 || res.status === 0) { retryLater(); return; }
      fail((res.body.error && res.body.error.message) || String(res.status));
    }, function () {
      inflight = false;
      offline = true;
      retryLater();
    });
  }
  window.addEventListener("online", function () { backoff = 0; pump(); });

  // --- the recording -----------------------------------------------------------------------
  function level() {
    if (!analyser) return;
    var buf = new Uint8Array(analyser.fftSize);
    analyser.getByteTimeDomainData(buf);
    var sum = 0;
    for (var i = 0; i < buf.length; i++) { var x = (buf[i] - 128) / 128; sum += x * x; }
    $("iv-level").value = state === "recording" ? Math.min(1, Math.sqrt(sum / buf.length) * 3) : 0;
    $("iv-time").textContent = active() ? clock(audioMs()) : "";
    if (active()) window.requestAnimationFrame(level);
  }
  function microphone() {
    if (stream) return Promise.resolve(stream); // permission is asked once per page
    if (!navigator.mediaDevices || !window.MediaRecorder) return Promise.reject(new Error(S.unsupported));
    return navigator.mediaDevices.getUserMedia({ audio: true }).then(function (s) {
      stream = s;
      try {
        audioCtx = new (window.AudioContext || window.webkitAudioContext)();
        analyser = audioCtx.createAnalyser();
        analyser.fftSize = 1024;
        audioCtx.createMediaStreamSource(s).connect(analyser);
      } catch (e) { analyser = null; }
      return s;
    });
  }
  function start() {
    $("iv-start").disabled = true;
    microphone().then(function (s) {
      return request("POST", data.urls.takes).then(function (res) {
        if (res.status !== 201) throw new Error((res.body.error && res.body.error.message) || String(res.status));
        take = res.body.take;
        queue = []; nextOff = 0; confirmed = 0; events = []; pendingLids = {}; acc = 0;
        var type = ["audio/webm;codecs=opus", "audio/webm"].find(function (t) { return MediaRecorder.isTypeSupported(t); });
        recorder = new MediaRecorder(s, type ? { mimeType: type } : undefined);
        recorder.ondataavailable = function (ev) { enqueue(ev.data); };
        recorder.onerror = function (ev) { fail((ev.error && ev.error.message) || "MediaRecorder"); };
        recorder.start(TIMESLICE_MS);
        since = performance.now();
        if (audioCtx && audioCtx.state === "suspended") audioCtx.resume();
        show("recording");
        log(video.paused ? "pause" : "play"); // where the video was when the interview began
        sendEvents();
        showUpload();
        level();
      });
    }).catch(function (err) {
      fail(tpl(S.no_mic, { reason: err.message || err.name }));
    }).then(function () { $("iv-start").disabled = false; });
  }
  function pause() {
    if (state !== "recording") return;
    recorder.pause();
    acc = audioMs(); since = null;
    show("paused");
    scheduleEvents();
  }
  function resume() {
    if (state !== "paused") return;
    recorder.resume();
    since = performance.now();
    show("recording");
    level();
  }
  function stop() {
    if (!active()) return;
    log("stop");
    acc = audioMs(); since = null;
    var t = take;
    recorder.onstop = function () { finish(t); };
    recorder.stop();
    show("finishing");
  }
  function drained() {
    return new Promise(function (resolve) {
      (function check() { if (!queue.length && !inflight) resolve(); else window.setTimeout(check, 300); })();
    });
  }
  function finish(t) {
    drained().then(function () {
      window.clearTimeout(eventsTimer);
      return postFinish(t, sendable(), 0);
    });
  }
  function postFinish(t, evs, tries) {
    var body = evs ? { events: evs } : {};
    return request("POST", takeUrl(t) + "/finish", { json: body }).then(function (res) {
      if (res.status !== 202) throw res;
      poll(t);
    }).catch(function (res) {
      if (res && res.status && res.status < 500 && res.status !== 429) {
        fail((res.body && res.body.error && res.body.error.message) || String(res.status));
        return;
      }
      window.setTimeout(function () { postFinish(t, evs, tries + 1); }, Math.min(1000 * Math.pow(2, tries), 15000));
    });
  }
  function poll(t) {
    request("GET", takeUrl(t)).then(function (res) {
      var st = res.body && res.body.status;
      if (st === "done") { show("done"); $("iv-upload").textContent = ""; document.dispatchEvent(new CustomEvent("ipr:interview-saved", { detail: { take: t } })); return; }
      if (st === "failed") { fail(res.body.error || ""); return; }
      window.setTimeout(function () { poll(t); }, 1000);
    }, function () { window.setTimeout(function () { poll(t); }, 2000); });
  }

  $("iv-start").addEventListener("click", start);
  $("iv-pause").addEventListener("click", pause);
  $("iv-resume").addEventListener("click", resume);
  $("iv-stop").addEventListener("click", stop);
  window.addEventListener("beforeunload", function (ev) {
    if (active() || queue.length) { ev.preventDefault(); ev.returnValue = ""; }
  });

  // --- a take left open (the tab closed mid-interview): upload what this browser kept, save --
  request("GET", data.urls.takes).then(function (res) {
    var open = (res.body.takes || []).filter(function (x) { return x.status === "recording" || x.status === "failed"; })[0];
    if (!open || take) return;
    $("iv-open").hidden = false;
    $("iv-open-text").textContent = tpl(S.open_take, { kb: Math.round(open.offset / 1024) });
    $("iv-open-save").onclick = function () {
      $("iv-open").hidden = true;
      show("finishing");
      take = open.take; confirmed = open.offset;
      kept(open.take).then(function (items) {
        queue = items.filter(function (q) { return q.off + q.blob.size > confirmed; });
        nextOff = queue.length ? queue[queue.length - 1].off + queue[queue.length - 1].blob.size : confirmed;
        pump();
        return drained();
      }).then(function () { return postFinish(open.take, null, 0); });
    };
    $("iv-open-discard").onclick = function () {
      $("iv-open").hidden = true;
      request("DELETE", takeUrl(open.take));
    };
  }, function () {});
  show("idle");
})();
