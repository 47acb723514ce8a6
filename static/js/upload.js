/* Resumable upload of a session recording with tus-js-client (static/vendor/tus-js-client).
 *
 * Each form carries its configuration in data-* attributes (strict CSP: no inline script).
 * tus-js-client remembers every unfinished upload in localStorage under a fingerprint of the
 * file (name, type, size, last modified) and the endpoint; choosing the same file again after a
 * reload finds it (findPreviousUploads) and resumes from the offset the server acknowledged.
 */
(function () {
  "use strict";

  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 60000];
  var SPEED_WINDOW_MS = 8000;

  /* Binary units, like the server's messages and the 20 GB (20 × 1024³ bytes) default. */
  function fmtBytes(n) {
    if (n >= 1073741824) return (n / 1073741824).toFixed(2) + " GB";
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    return Math.round(n / 1024) + " kB";
  }

  function fmtDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "—";
    seconds = Math.round(seconds);
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function withId(template, id) {
    return template.replace(/\/0(\/|$)/, "/" + id + "$1");
  }

  /* The server answers tus errors with a plain-text message meant for the researcher. */
  function explain(err) {
    var res = err && err.originalResponse;
    var status = res ? res.getStatus() : 0;
    var body = res ? (res.getBody() || "").trim() : "";
    if (body && body.charAt(0) !== "<" && body.length < 600) return body;
    if (status === 413) return "This file is larger than the upload limit.";
    if (status === 401) return "Your session has ended. Log in again, then choose the file again to resume.";
    if (status === 403) return "Your role in this study is read-only: ask the study owner to make you an editor.";
    if (status === 404) return "This upload is no longer on the server (it expired or was cancelled). Start it again.";
    if (status === 400) return "This page has expired. Reload it and choose the file again; the upload resumes.";
    if (!navigator.onLine) return "You are offline. The upload continues when the connection is back.";
    return "The upload stopped (" + (err && err.message ? err.message.split("\n")[0] : "unknown error") +
      "). Press Resume to continue from where it stopped.";
  }

  function setup(form) {
    var q = function (role) { return form.querySelector('[data-role="' + role + '"]'); };
    var fileInput = form.querySelector('input[type="file"]');
    var labelInput = form.querySelector('input[name="session_label"]');
    var maxBytes = Number(form.dataset.maxBytes);
    var upload = null;
    var previous = null;
    var samples = [];

    function message(text, isError) {
      var el = q("message");
      el.textContent = text || "";
      el.classList.toggle("error", Boolean(isError && text));
    }

    function buttons(state) {
      q("start").hidden = state !== "idle";
      q("pause").hidden = state !== "running";
      q("resume").hidden = state !== "paused";
      q("cancel").hidden = state === "idle" || state === "done";
      fileInput.disabled = labelInput.disabled = state === "running" || state === "done";
    }

    function progress(sent, total) {
      var now = Date.now();
      samples.push([now, sent]);
      while (samples.length > 2 && now - samples[0][0] > SPEED_WINDOW_MS) samples.shift();
      var first = samples[0];
      var speed = now > first[0] ? ((sent - first[1]) * 1000) / (now - first[0]) : 0;
      var pct = total ? (sent / total) * 100 : 0;
      q("progress").hidden = false;
      q("bar").value = pct;
      q("bar").textContent = pct.toFixed(0) + "%";
      q("progress-text").textContent =
        pct.toFixed(1) + "% · " + fmtBytes(sent) + " of " + fmtBytes(total) + " · " +
        (speed > 0 ? (speed / 1048576).toFixed(1) + " MB/s · " + fmtDuration((total - sent) / speed) + " left"
                   : "measuring speed…");
    }

    function build(file) {
      return new tus.Upload(file, {
        endpoint: form.dataset.endpoint,
        chunkSize: Number(form.dataset.chunkBytes) || Infinity,
        retryDelays: RETRY_DELAYS,
        headers: { "X-CSRFToken": form.dataset.csrf },
        metadata: { filename: file.name, session_label: labelInput.value.trim() },
        removeFingerprintOnSuccess: true,
        onShouldRetry: function (err) {
          var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          return status === 0 || status === 409 || status === 423 || status === 460 || status >= 500;
        },
        onProgress: progress,
        onError: function (err) {
          var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
          message(explain(err), true);
          buttons(status >= 400 && status < 500 && status !== 409 && status !== 423 ? "idle" : "paused");
        },
        onSuccess: function (payload) {
          var res = payload && payload.lastResponse;
          var id = res && res.getHeader("Upload-Recording-Id");
          buttons("done");
          q("previous").hidden = true;
          progress(file.size, file.size);
          done(id);
        }
      });
    }

    function done(id) {
      var box = q("done");
      box.hidden = false;
      box.textContent = "";
      if (!id) {
        message("Upload complete.", false);
        return;
      }
      message("Upload complete. The server now checks the file (duplicates are refused) and prepares it.", false);
      var link = document.createElement("a");
      link.href = withId(form.dataset.recordingUrl, id);
      link.textContent = "Open the recording";
      box.appendChild(link);
      var status = document.createElement("div");
      status.setAttribute("hx-get", withId(form.dataset.statusUrl, id) + "?was=queued");
      status.setAttribute("hx-trigger", "load");
      status.setAttribute("hx-swap", "outerHTML");
      box.appendChild(status);
      if (window.htmx) window.htmx.process(status);
      // the dyad's recordings table shows the new recording with its stage and percent
      var sessions = document.getElementById("sessions");
      if (sessions && window.htmx) {
        window.htmx.ajax("GET", window.location.pathname, { target: "#sessions", swap: "outerHTML" });
      }
    }

    fileInput.addEventListener("change", function () {
      message("");
      q("previous").hidden = true;
      previous = null;
      var file = fileInput.files[0];
      if (!file) return;
      if (maxBytes && file.size > maxBytes) {
        message("This file is " + fmtBytes(file.size) + "; the largest upload allowed is " + fmtBytes(maxBytes) + ".", true);
        return;
      }
      build(file).findPreviousUploads().then(function (found) {
        if (!found.length) return;
        found.sort(function (a, b) { return a.creationTime < b.creationTime ? 1 : -1; });
        previous = found[0];
        var label = previous.metadata && previous.metadata.session_label;
        if (label && !labelInput.value) labelInput.value = label;
        q("previous").textContent = "This file was partly uploaded before" +
          (label ? " as “" + label + "”" : "") + ". Start continues where it stopped.";
        q("previous").hidden = false;
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = fileInput.files[0];
      if (!labelInput.value.trim()) { message("Give the session a label, e.g. 'Session 3'.", true); return; }
      if (!file) { message("Choose the recording file.", true); return; }
      if (maxBytes && file.size > maxBytes) return;
      upload = build(file);
      if (previous) upload.resumeFromPreviousUpload(previous);
      samples = [];
      message(previous ? "Resuming…" : "Uploading… you can keep working in another tab.");
      q("done").hidden = true;
      buttons("running");
      upload.start();
    });

    q("pause").addEventListener("click", function () {
      if (!upload) return;
      upload.abort();
      buttons("paused");
      message("Paused. Resume continues from the last acknowledged byte.");
    });

    q("resume").addEventListener("click", function () {
      if (!upload) return;
      samples = [];
      message("Resuming…");
      buttons("running");
      upload.start();
    });

    q("cancel").addEventListener("click", function () {
      if (!upload) return;
      upload.abort(true).then(function () {
        message("Upload cancelled; nothing of it is kept on the server.");
      }, function () {
        message("Upload stopped; the server removes the partial file within a week.");
      });
      upload = null;
      previous = null;
      q("progress").hidden = true;
      q("previous").hidden = true;
      buttons("idle");
    });

    window.addEventListener("beforeunload", function (event) {
      if (!q("pause").hidden) event.preventDefault();
    });
    buttons("idle");
  }

  function init() {
    if (!window.tus || !tus.isSupported) return;
    document.querySelectorAll("form.tus-upload").forEach(setup);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
