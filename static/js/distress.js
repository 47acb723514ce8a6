// "I need to stop / this is distressing": pause, show the study's support text, tell the owner.
(function () {
  "use strict";
  var btn = document.getElementById("distress-btn");
  var dlg = document.getElementById("distress-dlg");
  if (!btn || !dlg) return;
  var state = document.getElementById("distress-state");
  var support = document.getElementById("distress-support");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function pauseVideo() {  // the recall page's video, or the follow-up's clip
    document.querySelectorAll("video").forEach(function (video) {
      if (!video.paused) video.pause();
    });
  }
  function flag() {
    state.textContent = "";
    return fetch(dlg.getAttribute("data-url"), {
      method: "POST",
      headers: { "X-CSRFToken": csrf, Accept: "application/json", "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
    }).then(function (resp) {
      if (!resp.ok) throw new Error(String(resp.status));
      return resp.json();
    }).then(function (out) {
      if (out.support_text) support.textContent = out.support_text;
      state.textContent = state.getAttribute("data-told");
      dlg.setAttribute("data-flagged", "1");
    }).catch(function () {
      state.textContent = state.getAttribute("data-offline");
    });
  }
  btn.addEventListener("click", function () {
    pauseVideo();
    // any other dialog (a break, Stop, Finish) gives way to this one
    document.querySelectorAll("dialog[open]").forEach(function (d) { if (d !== dlg) d.close(); });
    if (!dlg.open) dlg.showModal();
    document.getElementById("distress-h").focus();
    flag();
  });
  document.getElementById("distress-continue").addEventListener("click", function () {
    dlg.close();
    btn.focus();
  });
  document.getElementById("distress-stop").addEventListener("click", function () {
    var form = document.getElementById("stop-form");
    if (!form) { dlg.close(); return; }
    if (form.requestSubmit) form.requestSubmit();
    else form.submit();
  });
})();
