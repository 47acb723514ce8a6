// Play the interview here: plays one stop's stretch of the recall interview audio, from
// audio_start_ms to audio_end_ms, on the researcher's timeline (templates/timeline/_interview.html)
// and in the moment's detail when a moment with an interview segment is selected.
(function () {
  "use strict";
  var player = document.getElementById("iv-player");
  var status = document.getElementById("iv-play-status");
  if (!player) return;
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".iv-play-btn"));
  var stretch = null;

  function clock(ms) {
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }
  function watch() {
    if (!stretch || player.paused) return;
    if (player.currentTime * 1000 >= stretch.end) {
      player.pause();
      status.textContent = "Played the interview " + clock(stretch.start) + "–" + clock(stretch.end) + ".";
      stretch = null;
      return;
    }
    window.requestAnimationFrame(watch);
  }
  function play(btn) {
    var start = parseInt(btn.getAttribute("data-start-ms"), 10);
    var end = parseInt(btn.getAttribute("data-end-ms"), 10);
    var src = btn.getAttribute("data-src");
    stretch = { start: start, end: end };
    player.setAttribute("data-start-ms", String(start));
    player.setAttribute("data-end-ms", String(end));
    player.setAttribute("data-moment-id", btn.getAttribute("data-moment-id"));
    status.textContent = "Playing the interview " + clock(start) + "–" + clock(end) + " (the moment at " + clock(parseInt(btn.getAttribute("data-t-ms"), 10)) + ").";
    function go() {
      player.currentTime = start / 1000;
      player.play().then(watch, function () { status.textContent = "The interview audio could not be played here."; });
    }
    if (player.getAttribute("src") !== src) {
      player.preload = "auto";
      player.src = src;
      player.addEventListener("loadedmetadata", go, { once: true });
      player.load();
    } else {
      go();
    }
  }
  player.addEventListener("play", function () { if (stretch) window.requestAnimationFrame(watch); });
  buttons.forEach(function (b) { b.addEventListener("click", function () { play(b); }); });

  // the moment's detail (timeline.js fills it when a moment is selected)
  document.addEventListener("ipr:moment-selected", function (ev) {
    var detail = document.getElementById("tl-detail");
    if (!detail) return;
    [ev.detail.id, ev.detail.partner].forEach(function (id) {
      var src = buttons.find(function (b) { return b.getAttribute("data-moment-id") === String(id); });
      if (!src) return;
      var b = src.cloneNode(true);
      b.classList.add("iv-play-detail");
      b.addEventListener("click", function () { play(src); });
      // next to what was said at that moment (timeline.js), else at the end
      var said = detail.querySelectorAll(".tl-said[data-moment-id='" + String(id) + "']");
      var after = said.length ? said[said.length - 1] : null;
      if (after) after.insertAdjacentElement("afterend", b);
      else detail.appendChild(b);
    });
  });
})();
