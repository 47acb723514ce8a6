// The recording page: draw sound, pauses, scene cuts, clips and both motion-energy curves
// under the video, keep a playhead in step with it, and seek on click. No inline script.
(function () {
  "use strict";

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  function pickLevel(levels, durationMs, width) {
    // the finest level that still gives at most ~2 peaks per pixel
    var best = levels[levels.length - 1];
    for (var i = 0; i < levels.length; i++) {
      if (durationMs / levels[i].ms_per_peak <= width * 2) { best = levels[i]; break; }
    }
    return best;
  }

  function smooth(values, n) {
    // mean over n-sample blocks: 25 Hz motion energy is far finer than a pixel
    var out = [];
    for (var i = 0; i < values.length; i += n) {
      var s = 0, k = 0;
      for (var j = i; j < Math.min(values.length, i + n); j++) { if (values[j] !== null) { s += values[j]; k++; } }
      out.push(k ? s / k : 0);
    }
    return out;
  }

  // The same colours as the dyad timeline (timeline.js): scene cuts distinct from both people.
  var LEFT = "#0f766e", RIGHT = "#b45309", CUT = "#4338ca";

  function stepFor(durationMs, width) {
    // a tick every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min: at least ~70 px apart
    var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    for (var i = 0; i < steps.length; i++) {
      if ((steps[i] * 1000 / durationMs) * width >= 70) return steps[i] * 1000;
    }
    return 3600000;
  }

  function label(ms) {
    var s = Math.round(ms / 1000), m = Math.floor(s / 60), hh = Math.floor(m / 60);
    var ss = String(s % 60).padStart(2, "0");
    return hh ? hh + ":" + String(m % 60).padStart(2, "0") + ":" + ss : m + ":" + ss;
  }

  function drawAxis(ctx, x, durationMs, width, top) {
    // the time axis under the plot: ticks and m:ss labels of presentation time
    ctx.strokeStyle = "#5b6470"; ctx.fillStyle = "#5b6470"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(0, top + .5); ctx.lineTo(width, top + .5); ctx.stroke();
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "top";
    var step = stepFor(durationMs, width);
    for (var t = 0; t <= durationMs; t += step) {
      var px = Math.round(x(t)) + .5;
      ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + 4); ctx.stroke();
      var text = label(t), tw = ctx.measureText(text).width;
      ctx.fillText(text, Math.min(Math.max(0, px - tw / 2), width - tw), top + 6);
    }
  }

  function init() {
    var box = document.getElementById("signals");
    var video = document.getElementById("player");
    if (!box || !video) return;
    var canvas = document.getElementById("signals-canvas");
    var duration = parseInt(box.getAttribute("data-duration-ms"), 10) || 1;
    var clipStarts = (box.getAttribute("data-clips") || "").split(",").filter(Boolean).map(Number);
    var data = { wave: null, analysis: null };

    function draw() {
      var dpr = window.devicePixelRatio || 1;
      var w = canvas.clientWidth, h = canvas.clientHeight;
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
      var ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      var x = function (ms) { return (ms / duration) * w; };
      var waveTop = 4, waveH = 74, meTop = 88, meH = 84, axisTop = h - 22;
      var a = data.analysis || {};
      (a.silences_ms || []).forEach(function (s) {
        ctx.fillStyle = "#efe6cf";
        ctx.fillRect(x(s[0]), waveTop, Math.max(1, x(s[1]) - x(s[0])), waveH);
      });
      if (data.wave && data.wave.levels && data.wave.levels.length) {
        var lvl = pickLevel(data.wave.levels, duration, w);
        ctx.fillStyle = "#7a8794";
        var mid = waveTop + waveH / 2;
        lvl.peaks.forEach(function (p, i) {
          var px = x(i * lvl.ms_per_peak), pw = Math.max(1, x(lvl.ms_per_peak));
          ctx.fillRect(px, mid - p * waveH / 2, pw, Math.max(1, p * waveH));
        });
      }
      ctx.fillStyle = CUT;
      (a.scene_cuts_ms || []).forEach(function (t) { ctx.fillRect(x(t) - 1, 0, 2, h); });
      ctx.strokeStyle = "#9aa3ad"; ctx.setLineDash([3, 3]);
      clipStarts.forEach(function (t) { if (t > 0) { ctx.beginPath(); ctx.moveTo(x(t), 0); ctx.lineTo(x(t), h); ctx.stroke(); } });
      ctx.setLineDash([]);
      var me = a.motion_energy;
      if (me && me.therapist && !me.left) { me.left = me.therapist; me.right = me.client; } // drawn regions
      if (me && me.rate_hz) {
        var per = Math.max(1, Math.floor((me.left || []).length / w));
        [["left", LEFT], ["right", RIGHT]].forEach(function (pair) {
          var series = smooth(me[pair[0]] || [], per);
          var peak = 0; series.forEach(function (v) { if (v > peak) peak = v; });
          peak = peak || 1;
          ctx.strokeStyle = pair[1]; ctx.lineWidth = 1.5; ctx.beginPath();
          series.forEach(function (v, i) {
            var px = x((i * per * 1000) / me.rate_hz), py = meTop + meH - (v / peak) * meH;
            if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
          });
          ctx.stroke();
        });
      }
      drawAxis(ctx, x, duration, w, axisTop);
      ctx.fillStyle = "#1d232b";
      ctx.fillRect(x(video.currentTime * 1000) - 1, 0, 2, axisTop);
    }

    canvas.addEventListener("click", function (ev) {
      var rect = canvas.getBoundingClientRect();
      video.currentTime = ((ev.clientX - rect.left) / rect.width) * duration / 1000;
    });
    video.addEventListener("timeupdate", function () {
      draw();
      var t = video.currentTime * 1000;
      document.querySelectorAll(".clip").forEach(function (li) {
        var b = li.querySelector(".clip-seek");
        var next = li.nextElementSibling && li.nextElementSibling.querySelector(".clip-seek");
        var start = Number(b.getAttribute("data-start-ms"));
        var end = next ? Number(next.getAttribute("data-start-ms")) : Infinity;
        li.classList.toggle("current", t >= start && t < end);
      });
    });
    window.addEventListener("resize", draw);
    document.querySelectorAll(".clip-seek").forEach(function (b) {
      b.addEventListener("click", function () {
        video.currentTime = Number(b.getAttribute("data-start-ms")) / 1000;
        video.play();
      });
    });
    Promise.all([
      fetchJson(box.getAttribute("data-waveform")).catch(function () { return null; }),
      fetchJson(box.getAttribute("data-analysis")).catch(function () { return null; }),
    ]).then(function (res) { data.wave = res[0]; data.analysis = res[1]; draw(); });
    draw();
  }

  // The recall section: times seek the video; a code's shortcut key toggles that code on the
  // moment that has focus (the researcher's own layer), saved at once by htmx.
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-seek-ms]");
    var video = document.getElementById("player");
    if (t && video) {
      video.currentTime = Number(t.getAttribute("data-seek-ms")) / 1000;
      video.scrollIntoView({ behavior: "smooth", block: "center" });
    }
  });
  document.addEventListener("focusin", function (ev) {
    if (ev.target.matches && ev.target.matches("[data-select-on-focus]")) ev.target.select();
  });
  // Copy a link box's text; the button says "Copied" so the researcher knows it worked.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-copy]");
    if (!btn) return;
    var box = document.getElementById(btn.getAttribute("data-copy"));
    if (!box) return;
    box.focus();
    box.select();
    var done = function () { btn.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(box.value).then(done, function () {
        if (document.execCommand("copy")) done();
      });
    } else if (document.execCommand("copy")) {
      done();
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" && ev.target.type !== "checkbox") return;
    if (tag === "textarea" || tag === "select") return;
    var moment = ev.target.closest && ev.target.closest(".moment");
    if (!moment) return;
    var box = moment.querySelector('input[data-shortcut="' + ev.key.toLowerCase() + '"]');
    if (!box) return;
    ev.preventDefault();
    var id = moment.id;
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    document.addEventListener("htmx:afterSwap", function refocus() {
      document.removeEventListener("htmx:afterSwap", refocus);
      var again = document.getElementById(id);
      if (again) again.focus();
    });
  });

  document.addEventListener("DOMContentLoaded", init);
})();
