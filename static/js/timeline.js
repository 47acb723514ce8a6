// The dyad timeline: both participants' lanes, the researchers' coding, sound, scene cuts, clips,
// both motion-energy curves and the synchrony band on one canvas, drawn from the page's JSON
// payload (#timeline-data) plus the recording's waveform/analysis JSON. Hover shows a moment;
// click seeks the video; zoom, pan, filters, tolerance and J/K stepping. No inline script.
(function () {
  "use strict";

  var ROLE = { therapist: "#2f6f8f", client: "#b5508a" };
  var LEFT = "#0f766e", RIGHT = "#b45309", CUT = "#4338ca", INK = "#1d232b", MUTED = "#5b6470";
  var RESPONSE = "#7c3aed";
  var GUTTER = 104, MIN_SPAN = 10000;
  var STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map(function (s) { return s * 1000; });

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(url + ": " + r.status);
        return r.json();
      });
  }

  function clock(ms, tenths) {
    var neg = ms < 0; ms = Math.abs(ms);
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    var sec = s % 60, out = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
    if (tenths) out += "." + Math.floor((ms % 1000) / 100);
    return (neg ? "−" : "") + out;
  }

  function lagText(lag) {
    if (lag === 0) return "same moment";
    var s = (Math.abs(lag) / 1000).toFixed(1) + " s";
    return lag > 0 ? "therapist first by " + s : "client first by " + s;
  }

  function mix(a, b, t) {
    var pa = [1, 3, 5].map(function (i) { return parseInt(a.substr(i, 2), 16); });
    var pb = [1, 3, 5].map(function (i) { return parseInt(b.substr(i, 2), 16); });
    return "rgb(" + pa.map(function (v, i) { return Math.round(v + (pb[i] - v) * t); }).join(",") + ")";
  }

  // Helpful Aspects style: hindering red, neutral grey, helpful green.
  function ratingColour(value, scale) {
    var mid = (scale.min + scale.max) / 2, half = (scale.max - scale.min) / 2 || 1;
    var t = (value - mid) / half;
    return t < 0 ? mix("#9aa3ad", "#b2182b", -t) : mix("#9aa3ad", "#1b7837", t);
  }

  function syncColour(v) {
    if (v === null || v === undefined) return "#eeeeee";
    return mix("#f3f0f7", "#3f007d", Math.min(1, Math.max(0, v / 0.35)));
  }

  function Board(canvas, data, opts) {
    this.canvas = canvas;
    this.data = data;
    this.opts = opts || {};
    this.mini = !!this.opts.mini;
    this.view = { start: 0, end: data.duration_ms };
    this.wave = null;
    this.analysis = null;
    this.items = [];
    this.selected = null;
    this.filter = { lanes: { therapist: true, client: true, researcher: true }, code: "", coder: "", rmin: null, rmax: null };
    this.colourBy = data.scales && data.scales.length ? "rating" : "role";
    this.codes = {};
    var self = this;
    (data.codes || []).forEach(function (c) { self.codes[c.id] = c; });
    this.scale = (data.scales || [])[0] || null;
    this.index();
  }

  Board.prototype.index = function () {
    // partner of every moment, codings per moment, one time-ordered list for stepping
    var d = this.data, partner = {}, byId = {}, coded = {};
    d.pairs.forEach(function (p) {
      partner[p.therapist_moment_id] = { id: p.client_moment_id, lag: p.lag_ms };
      partner[p.client_moment_id] = { id: p.therapist_moment_id, lag: p.lag_ms };
    });
    ["therapist", "client"].forEach(function (role) {
      d.lanes[role].forEach(function (m) { byId[m.id] = { role: role, m: m }; });
    });
    d.lanes.researcher.forEach(function (c) { (coded[c.moment_id] = coded[c.moment_id] || []).push(c); });
    this.partner = partner; this.byId = byId; this.coded = coded;
  };

  Board.prototype.setMatching = function (payload) {
    this.data.pairs = payload.pairs;
    this.data.unmatched = payload.unmatched;
    this.data.figures_status = payload.figures_status;
    this.data.tolerance_ms = payload.tolerance_ms;
    this.data.figures = payload.figures;
    this.index();
    this.draw();
  };

  Board.prototype.visible = function (role, m) {
    return this.filter.lanes[role] && this.passes(m);
  };

  // the code and rating filters, whatever the lane
  Board.prototype.passes = function (m) {
    var f = this.filter;
    if (f.code) {
      var id = Number(f.code), hit = m.codes.indexOf(id) >= 0;
      (this.coded[m.id] || []).forEach(function (c) { if (c.codes.indexOf(id) >= 0) hit = true; });
      if (!hit) return false;
    }
    if (this.scale && (f.rmin !== null || f.rmax !== null)) {
      var v = m.ratings[this.scale.key];
      if (v === undefined || v === null) return false;
      if (f.rmin !== null && v < f.rmin) return false;
      if (f.rmax !== null && v > f.rmax) return false;
    }
    return true;
  };

  Board.prototype.colour = function (role, m) {
    if (this.colourBy === "code") {
      var c = m.codes.length && this.codes[m.codes[0]];
      if (!c && this.coded[m.id]) {
        var first = this.coded[m.id].find(function (x) { return x.codes.length; });
        c = first && this.codes[first.codes[0]];
      }
      return c ? c.colour : "#9aa3ad";
    }
    if (this.colourBy === "rating" && this.scale) {
      var v = m.ratings[this.scale.key];
      return v === undefined || v === null ? "#c9ced4" : ratingColour(v, this.scale);
    }
    return ROLE[role];
  };

  Board.prototype.layout = function () {
    if (this.mini) {
      return { axis: 18, t: [20, 26], link: [46, 20], c: [66, 26], res: null, wave: null, motion: null, sync: [96, 10], h: 110 };
    }
    return { axis: 22, t: [24, 40], link: [64, 30], c: [94, 40], res: [138, 20], wave: [166, 52], motion: [224, 56], sync: [286, 16], h: 308 };
  };

  Board.prototype.x = function (ms) {
    var w = this.width - GUTTER - 10;
    return GUTTER + ((ms - this.view.start) / (this.view.end - this.view.start)) * w;
  };

  Board.prototype.ms = function (px) {
    var w = this.width - GUTTER - 10;
    return this.view.start + ((px - GUTTER) / w) * (this.view.end - this.view.start);
  };

  Board.prototype.draw = function () {
    var canvas = this.canvas, L = this.layout();
    var dpr = window.devicePixelRatio || 1;
    this.width = canvas.clientWidth || 800;
    canvas.style.height = L.h + "px";
    canvas.width = Math.round(this.width * dpr); canvas.height = Math.round(L.h * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, L.h);
    ctx.font = "12px system-ui, sans-serif";
    this.items = [];
    this.drawAxis(ctx, L);
    this.drawLabels(ctx, L);
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER - 2, 0, this.width - GUTTER + 2, L.h); ctx.clip();
    if (L.wave) this.drawSignals(ctx, L);
    this.drawSync(ctx, L);
    this.drawLanes(ctx, L);
    if (this.opts.video) {
      var px = this.x(this.opts.video.currentTime * 1000);
      ctx.fillStyle = INK; ctx.fillRect(px - 1, 0, 2, L.h);
    }
    ctx.restore();
    if (this.onDraw) this.onDraw();
  };

  Board.prototype.drawAxis = function (ctx, L) {
    var span = this.view.end - this.view.start, w = this.width - GUTTER;
    var step = STEPS[STEPS.length - 1];
    for (var i = 0; i < STEPS.length; i++) { if (span / STEPS[i] <= w / 90) { step = STEPS[i]; break; } }
    ctx.fillStyle = MUTED; ctx.strokeStyle = "#e6e3dc"; ctx.lineWidth = 1; ctx.textBaseline = "top";
    for (var t = Math.ceil(this.view.start / step) * step; t <= this.view.end; t += step) {
      var px = Math.round(this.x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, L.axis - 4); ctx.lineTo(px, L.h); ctx.stroke();
      var label = clock(t, step < 1000);
      if (px + 3 + ctx.measureText(label).width < this.width) ctx.fillText(label, px + 3, 3);
    }
  };

  Board.prototype.drawLabels = function (ctx, L) {
    var p = this.data.participants || {}, rows = [];
    rows.push([L.t, "Therapist " + ((p.therapist && p.therapist.code) || ""), ROLE.therapist]);
    rows.push([L.c, "Client " + ((p.client && p.client.code) || ""), ROLE.client]);
    if (L.res) rows.push([L.res, "Coding", INK]);
    if (L.wave) rows.push([L.wave, "Sound", MUTED]);
    if (L.motion) rows.push([L.motion, "Movement", MUTED]);
    rows.push([L.sync, "Synchrony", "#3f007d"]);
    ctx.textBaseline = "middle"; ctx.font = "600 12px system-ui, sans-serif";
    rows.forEach(function (r) {
      ctx.fillStyle = r[2];
      ctx.fillText(r[1], 4, r[0][0] + r[0][1] / 2, GUTTER - 10);
    });
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#f7f6f3";
    [L.t, L.c].forEach(function (band) { ctx.fillRect(GUTTER - 2, band[0], 100000, band[1]); });
  };

  Board.prototype.drawLanes = function (ctx, L) {
    var self = this, d = this.data, pos = {};
    var lo = this.view.start - 1, hi = this.view.end + 1;
    ["therapist", "client"].forEach(function (role) {
      var band = role === "therapist" ? L.t : L.c;
      var edge = role === "therapist" ? band[0] + band[1] - 6 : band[0] + 6;
      d.lanes[role].forEach(function (m) {
        if (!self.visible(role, m)) return;
        var end = m.end_ms === null ? m.t_ms : m.end_ms;
        pos[m.id] = { x: self.x(m.t_ms), y: edge };
        if (end < lo || m.t_ms > hi) return;
        var matched = !!self.partner[m.id], colour = self.colour(role, m);
        var x0 = self.x(m.t_ms), x1 = self.x(end), top = band[0] + 4, h = band[1] - 8;
        ctx.globalAlpha = matched ? 1 : 0.9;
        if (x1 - x0 >= 3) {
          ctx.fillStyle = colour; ctx.globalAlpha = matched ? 0.55 : 0.18;
          ctx.fillRect(x0, top + h * 0.25, x1 - x0, h * 0.5);
          ctx.globalAlpha = 1; ctx.strokeStyle = colour; ctx.lineWidth = 1.5;
          if (!matched) ctx.setLineDash([4, 3]);
          ctx.strokeRect(x0, top + h * 0.25, x1 - x0, h * 0.5);
          ctx.setLineDash([]);
          ctx.fillStyle = INK;
          (m.peaks_ms || []).forEach(function (pk) {
            var px = self.x(pk);
            ctx.beginPath(); ctx.moveTo(px - 4, top + h * 0.2); ctx.lineTo(px + 4, top + h * 0.2); ctx.lineTo(px, top + h * 0.45); ctx.fill();
          });
        } else {
          ctx.fillStyle = colour;
          ctx.fillRect(x0 - 1, top + (matched ? 0 : h * 0.3), 2, matched ? h : h * 0.7);
        }
        if (m.phase === "response") {
          // a response (after the reveal): a hollow diamond in its own colour, never paired
          var r = self.mini ? 4 : 6;
          ctx.beginPath(); ctx.moveTo(x0, edge - r); ctx.lineTo(x0 + r, edge); ctx.lineTo(x0, edge + r); ctx.lineTo(x0 - r, edge); ctx.closePath();
          ctx.fillStyle = "#fff"; ctx.fill(); ctx.strokeStyle = RESPONSE; ctx.lineWidth = 2; ctx.stroke();
        } else {
          ctx.beginPath(); ctx.arc(x0, edge, self.mini ? 3.5 : 5, 0, Math.PI * 2);
          if (matched) { ctx.fillStyle = colour; ctx.fill(); }
          else { ctx.fillStyle = "#fff"; ctx.fill(); ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.stroke(); }
        }
        if (self.selected === m.id) {
          ctx.strokeStyle = "#f2a900"; ctx.lineWidth = 3;
          ctx.beginPath(); ctx.arc(x0, edge, 9, 0, Math.PI * 2); ctx.stroke();
        }
        ctx.globalAlpha = 1;
        self.items.push({ role: role, m: m, x0: Math.min(x0, x1) - 5, x1: Math.max(x0, x1) + 5, y0: band[0], y1: band[0] + band[1], cx: x0 });
      });
    });
    ctx.strokeStyle = "#4b5563"; ctx.lineWidth = 1.4; ctx.globalAlpha = 0.75;
    d.pairs.forEach(function (p) {
      var a = pos[p.therapist_moment_id], b = pos[p.client_moment_id];
      if (!a || !b) return;
      if (Math.max(a.x, b.x) < GUTTER || Math.min(a.x, b.x) > self.width) return;
      ctx.beginPath(); ctx.moveTo(a.x, a.y + 5); ctx.lineTo(b.x, b.y - 5); ctx.stroke();
    });
    // each response threaded to the moment it answers: a dotted curve in the response colour
    ctx.strokeStyle = RESPONSE; ctx.lineWidth = 1.4; ctx.setLineDash([2, 3]);
    ["therapist", "client"].forEach(function (role) {
      d.lanes[role].forEach(function (m) {
        var a = pos[m.id], b = m.responds_to_id && pos[m.responds_to_id];
        if (!a || !b || Math.max(a.x, b.x) < GUTTER || Math.min(a.x, b.x) > self.width) return;
        var bend = (a.x + b.x) / 2 + (a.y < b.y ? 14 : -14);
        ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.quadraticCurveTo(bend, (a.y + b.y) / 2, b.x, b.y); ctx.stroke();
      });
    });
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    if (L.res && this.filter.lanes.researcher) {
      d.lanes.researcher.forEach(function (c) {
        var owner = self.byId[c.moment_id];
        if (!owner || !self.passes(owner.m)) return;
        if (self.filter.coder && c.coder !== self.filter.coder) return;
        if (c.t_ms < lo || c.t_ms > hi) return;
        var px = self.x(c.t_ms), code = c.codes.length && self.codes[c.codes[0]];
        ctx.fillStyle = code ? code.colour : "#9aa3ad";
        var y = L.res[0] + 3 + (owner.role === "client" ? 7 : 0);
        ctx.fillRect(px - 4, y, 8, 8);
        self.items.push({ coding: c, x0: px - 6, x1: px + 6, y0: L.res[0], y1: L.res[0] + L.res[1], cx: px });
      });
    }
  };

  Board.prototype.drawSignals = function (ctx, L) {
    var self = this, a = this.analysis || {}, w = this.width;
    var top = L.wave[0], wh = L.wave[1], bottom = L.sync[0] + L.sync[1];
    ctx.fillStyle = "#efe6cf";
    (a.silences_ms || []).forEach(function (s) {
      if (s[1] < self.view.start || s[0] > self.view.end) return;
      var x0 = self.x(s[0]); ctx.fillRect(x0, top, Math.max(1, self.x(s[1]) - x0), wh);
    });
    if (this.wave && this.wave.levels && this.wave.levels.length) {
      var span = this.view.end - this.view.start, levels = this.wave.levels, lvl = levels[levels.length - 1];
      for (var i = 0; i < levels.length; i++) { if (span / levels[i].ms_per_peak <= w * 2) { lvl = levels[i]; break; } }
      var mid = top + wh / 2, first = Math.max(0, Math.floor(this.view.start / lvl.ms_per_peak));
      var last = Math.min(lvl.peaks.length, Math.ceil(this.view.end / lvl.ms_per_peak) + 1);
      var pw = Math.max(1, this.x(lvl.ms_per_peak) - this.x(0));
      ctx.fillStyle = "#7a8794";
      for (var k = first; k < last; k++) {
        var p = lvl.peaks[k];
        ctx.fillRect(this.x(k * lvl.ms_per_peak), mid - (p * wh) / 2, pw, Math.max(1, p * wh));
      }
    }
    ctx.strokeStyle = "#9aa3ad"; ctx.setLineDash([3, 3]); ctx.lineWidth = 1;
    ctx.fillStyle = MUTED; ctx.textBaseline = "top";
    (this.data.clips || []).forEach(function (c) {
      var px = Math.round(self.x(c.start_ms)) + 0.5;
      if (c.start_ms > 0 && px > GUTTER && px < w) { ctx.beginPath(); ctx.moveTo(px, top - 4); ctx.lineTo(px, bottom); ctx.stroke(); }
      var room = self.x(c.end_ms) - Math.max(GUTTER, self.x(c.start_ms));
      if (room > 48) ctx.fillText("clip " + c.index, Math.max(GUTTER, px) + 3, top - 2);
    });
    ctx.setLineDash([]);
    ctx.fillStyle = CUT;
    (a.scene_cuts_ms || []).forEach(function (t) {
      if (t >= self.view.start && t <= self.view.end) ctx.fillRect(self.x(t) - 1, top, 2, bottom - top);
    });
    var me = a.motion_energy;
    if (me && me.rate_hz && me.left && me.left.length) {
      var mtop = L.motion[0], mh = L.motion[1];
      [["left", LEFT], ["right", RIGHT]].forEach(function (pair) {
        var series = me[pair[0]] || [], peak = self.peaks[pair[0]] || 1;
        var i0 = Math.max(0, Math.floor((self.view.start / 1000) * me.rate_hz));
        var i1 = Math.min(series.length, Math.ceil((self.view.end / 1000) * me.rate_hz) + 1);
        var per = Math.max(1, Math.floor((i1 - i0) / (w - GUTTER)));
        ctx.strokeStyle = pair[1]; ctx.lineWidth = 1.3; ctx.beginPath();
        for (var i = i0, n = 0; i < i1; i += per, n++) {
          var s = 0, k = 0;
          for (var j = i; j < Math.min(i1, i + per); j++) { if (series[j] !== null) { s += series[j]; k++; } }
          var v = k ? Math.min(1, s / k / peak) : 0;
          var px = self.x((i * 1000) / me.rate_hz), py = mtop + mh - v * mh;
          if (n === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
        }
        ctx.stroke();
      });
    }
  };

  Board.prototype.drawSync = function (ctx, L) {
    var self = this, sync = this.data.figures && this.data.figures.synchrony;
    if (!sync || !sync.series) {
      ctx.fillStyle = MUTED; ctx.textBaseline = "middle";
      ctx.fillText(sync && sync.error ? sync.error : "No motion-energy analysis for this recording.", GUTTER + 4, L.sync[0] + L.sync[1] / 2);
      return;
    }
    var half = sync.step_ms / 2;
    sync.series.forEach(function (p) {
      if (p.t_ms + half < self.view.start || p.t_ms - half > self.view.end) return;
      var x0 = self.x(p.t_ms - half), x1 = self.x(p.t_ms + half);
      ctx.fillStyle = syncColour(p.value);
      ctx.fillRect(x0, L.sync[0], Math.max(1, x1 - x0 + 0.5), L.sync[1]);
      self.items.push({ sync: p, x0: x0, x1: x1, y0: L.sync[0], y1: L.sync[0] + L.sync[1], cx: (x0 + x1) / 2 });
    });
  };

  Board.prototype.prepare = function () {
    // a robust top for each motion curve (99th percentile) so one burst does not flatten the rest
    this.peaks = {};
    var me = this.analysis && this.analysis.motion_energy;
    if (!me) return;
    if (me.therapist && !me.left) { me.left = me.therapist; me.right = me.client; } // drawn regions
    var self = this;
    ["left", "right"].forEach(function (k) {
      var s = (me[k] || []).filter(function (v) { return v !== null; }).slice().sort(function (a, b) { return a - b; });
      self.peaks[k] = s.length ? s[Math.floor(s.length * 0.99)] || s[s.length - 1] || 1 : 1;
    });
  };

  Board.prototype.hit = function (px, py) {
    var best = null, dist = Infinity;
    this.items.forEach(function (it) {
      if (py < it.y0 || py > it.y1 || px < it.x0 || px > it.x1) return;
      var dd = Math.abs(px - it.cx);
      if (dd < dist) { dist = dd; best = it; }
    });
    return best;
  };

  // what zoom keeps in place: the selected moment, else the playhead, else the middle
  Board.prototype.focusMs = function () {
    var v = this.view, sel = this.selected !== null && this.byId[this.selected];
    if (sel && sel.m.t_ms >= v.start && sel.m.t_ms <= v.end) return sel.m.t_ms;
    var t = this.opts.video ? this.opts.video.currentTime * 1000 : -1;
    if (t > v.start && t <= v.end) return t;
    return (v.start + v.end) / 2;
  };

  Board.prototype.zoom = function (factor, centreMs) {
    var span = this.view.end - this.view.start, dur = this.data.duration_ms;
    var next = Math.min(dur, Math.max(MIN_SPAN, span * factor));
    if (centreMs === undefined) centreMs = this.focusMs();
    var frac = (centreMs - this.view.start) / span;
    this.setView(centreMs - frac * next, next);
  };

  Board.prototype.setView = function (start, span) {
    var dur = this.data.duration_ms;
    span = Math.min(dur, Math.max(Math.min(MIN_SPAN, dur), span));
    start = Math.max(0, Math.min(dur - span, start));
    this.view = { start: start, end: start + span };
    this.draw();
  };

  Board.prototype.pan = function (fraction) {
    var span = this.view.end - this.view.start;
    this.setView(this.view.start + span * fraction, span);
  };

  Board.prototype.ordered = function () {
    var self = this, list = [];
    ["therapist", "client"].forEach(function (role) {
      self.data.lanes[role].forEach(function (m) { if (self.visible(role, m)) list.push({ role: role, m: m }); });
    });
    list.sort(function (a, b) { return a.m.t_ms - b.m.t_ms || a.m.id - b.m.id; });
    return list;
  };

  // --- the page ------------------------------------------------------------------------------

  function describe(board, role, m) {
    var parts = [], partner = board.partner[m.id];
    var when = clock(m.t_ms, true) + (m.end_ms !== null && m.end_ms !== m.t_ms ? "–" + clock(m.end_ms, true) : "");
    var who = (board.data.participants[role] || {}).code || "";
    parts.push(["strong", (role === "therapist" ? "Therapist " : "Client ") + who + " · " + when]);
    if (m.phase === "response") {
      var answered = m.responds_to_id && board.byId[m.responds_to_id];
      parts.push(["p", answered ? "Response after the reveal to the " + answered.role + "'s moment at " + clock(answered.m.t_ms, true) + " (not counted in any figure)" : "Added after the reveal (response phase; not counted in any figure)"]);
    } else if (partner) {
      var other = board.byId[partner.id];
      parts.push(["p", "Paired with the " + other.role + "'s moment at " + clock(other.m.t_ms, true) + " (lag " + (partner.lag >= 0 ? "+" : "−") + (Math.abs(partner.lag) / 1000).toFixed(1) + " s: " + lagText(partner.lag) + ")"]);
    } else {
      parts.push(["p", role === "therapist" ? "Therapist only: the client did not stop within the tolerance." : "Client only: the therapist did not stop within the tolerance."]);
    }
    (board.data.scales || []).forEach(function (s) {
      var v = m.ratings[s.key];
      if (v !== undefined && v !== null) parts.push(["p", s.name + ": " + v + (s.labels && s.labels[String(v)] ? " (" + s.labels[String(v)] + ")" : "")]);
    });
    var names = m.codes.map(function (c) { return board.codes[c] ? board.codes[c].name : null; }).filter(Boolean);
    if (names.length) parts.push(["p", "Codes: " + names.join(", ")]);
    (board.coded[m.id] || []).forEach(function (c) {
      var cn = c.codes.map(function (k) { return board.codes[k] ? board.codes[k].name : null; }).filter(Boolean);
      parts.push(["p", "Coded by " + c.coder + ": " + (cn.join(", ") || "—") + (c.note ? " — " + c.note : "")]);
    });
    if (m.corrected_at) parts.push(["p", "Corrected by a researcher after the reveal (" + m.corrected_at.replace("T", " ").replace("Z", " UTC") + ")"]);
    if (m.text) parts.push(["q", m.text]);
    ((board.data.prompt_answers || {})[m.id] || []).forEach(function (a) {
      parts.push(["p", "Interview · " + a.question + " — " + a.answer]);
    });
    // what was said: the transcript's utterances at this stop, timed on the interview audio
    var said = (board.data.utterances || {})[m.id] || [];
    if (said.length) parts.push(["h3", "What was said", { "class": "tl-said-h" }]);
    said.forEach(function (u) {
      var at = clock(u.start_ms, true) + (u.end_ms !== null && u.end_ms !== u.start_ms ? "–" + clock(u.end_ms, true) : "");
      parts.push(["p", at + " · " + u.text, { "class": "tl-said", "data-moment-id": String(m.id), "data-start-ms": String(u.start_ms) }]);
    });
    return parts;
  }

  function fill(el, parts, limit) {
    el.textContent = "";
    parts.forEach(function (p) {
      var node = document.createElement(p[0] === "q" ? "blockquote" : p[0]);
      var text = p[1];
      if (limit && p[0] === "q" && text.length > limit) text = text.slice(0, limit) + "…";
      node.textContent = text;
      Object.keys(p[2] || {}).forEach(function (k) { node.setAttribute(k, p[2][k]); });
      el.appendChild(node);
    });
  }

  function initPage() {
    var node = document.getElementById("timeline-data");
    var canvas = document.getElementById("tl-canvas");
    if (!node || !canvas) return;
    var data = JSON.parse(node.textContent);
    var video = document.getElementById("tl-player");
    var board = new Board(canvas, data, { video: video });
    var tip = document.getElementById("tl-tip"), detail = document.getElementById("tl-detail");
    var rangeLabel = document.getElementById("tl-range");
    board.onDraw = function () {
      if (rangeLabel) rangeLabel.textContent = "Showing " + clock(board.view.start) + "–" + clock(board.view.end) + " of " + clock(data.duration_ms);
    };

    function select(role, m, seek) {
      board.selected = m.id;
      if (seek && video) video.currentTime = m.t_ms / 1000;
      var span = board.view.end - board.view.start;
      if (m.t_ms < board.view.start || m.t_ms > board.view.end) board.setView(m.t_ms - span / 2, span);
      else board.draw();
      var parts = describe(board, role, m), partner = board.partner[m.id];
      if (partner) {
        var other = board.byId[partner.id];
        parts = parts.concat([["hr", ""]], describe(board, other.role, other.m).filter(function (p, i) { return i !== 1; }));
      }
      fill(detail, parts);
      document.dispatchEvent(new CustomEvent("ipr:moment-selected", { detail: { id: m.id, partner: partner ? partner.id : null } }));
    }

    var drag = null;
    canvas.addEventListener("pointerdown", function (ev) {
      drag = { x: ev.clientX, start: board.view.start, moved: false };
      canvas.setPointerCapture(ev.pointerId);
    });
    canvas.addEventListener("pointermove", function (ev) {
      var rect = canvas.getBoundingClientRect(), px = ev.clientX - rect.left, py = ev.clientY - rect.top;
      if (drag) {
        var dx = ev.clientX - drag.x;
        if (Math.abs(dx) > 3) drag.moved = true;
        if (drag.moved) {
          var span = board.view.end - board.view.start;
          board.setView(drag.start - (dx / (board.width - GUTTER - 10)) * span, span);
          tip.hidden = true;
          return;
        }
      }
      var it = board.hit(px, py);
      if (!it) { tip.hidden = true; canvas.classList.remove("pointing"); return; }
      canvas.classList.add("pointing");
      if (it.m) fill(tip, describe(board, it.role, it.m).filter(function (p) { return !p[2]; }), 280);  // what was said: the detail only
      else if (it.coding) fill(tip, [["strong", "Coding · " + clock(it.coding.t_ms, true)], ["p", it.coding.codes.map(function (k) { return board.codes[k] ? board.codes[k].name : ""; }).join(", ") || "—"], ["p", "by " + it.coding.coder], ["q", it.coding.note]]);
      else fill(tip, [["strong", "Synchrony · window at " + clock(it.sync.t_ms)], ["p", it.sync.value === null ? "No value (too little movement data)" : "mean |z| over lags = " + it.sync.value.toFixed(3)]]);
      tip.hidden = false;
      var left = Math.min(px + 14, rect.width - tip.offsetWidth - 4);
      tip.style.left = Math.max(0, left) + "px";
      tip.style.top = (py + 16) + "px";
    });
    canvas.addEventListener("pointerleave", function () { tip.hidden = true; });
    canvas.addEventListener("pointerup", function (ev) {
      var wasDrag = drag && drag.moved; drag = null;
      if (wasDrag) return;
      var rect = canvas.getBoundingClientRect(), px = ev.clientX - rect.left, py = ev.clientY - rect.top;
      if (px < GUTTER) return;
      var it = board.hit(px, py);
      if (it && it.m) { select(it.role, it.m, true); return; }
      if (it && it.coding) { var o = board.byId[it.coding.moment_id]; if (o) select(o.role, o.m, true); return; }
      if (video) { video.currentTime = Math.max(0, board.ms(px)) / 1000; board.draw(); }
    });
    canvas.addEventListener("wheel", function (ev) {
      var rect = canvas.getBoundingClientRect();
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        board.zoom(Math.exp(ev.deltaY * 0.01), board.ms(ev.clientX - rect.left));
      } else if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
        ev.preventDefault();
        board.pan(ev.deltaX / (board.width - GUTTER));
      }
    }, { passive: false });

    function step(dir) {
      var list = board.ordered();
      if (!list.length) return;
      var now = board.selected !== null && board.byId[board.selected] ? board.byId[board.selected].m : null;
      var t = now ? now.t_ms : (video ? video.currentTime * 1000 : 0), id = now ? now.id : -1;
      var pick = null;
      if (dir > 0) pick = list.find(function (x) { return x.m.t_ms > t || (x.m.t_ms === t && x.m.id > id); });
      else for (var i = list.length - 1; i >= 0; i--) { var x = list[i]; if (x.m.t_ms < t || (x.m.t_ms === t && x.m.id < id)) { pick = x; break; } }
      if (pick) select(pick.role, pick.m, true);
    }

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      var tag = (ev.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select" || tag === "video") return;
      var k = ev.key;
      if (k === "j" || k === "n" || k === "J" || k === "N") step(1);
      else if (k === "k" || k === "p" || k === "K" || k === "P") step(-1);
      else if (k === "+" || k === "=") board.zoom(0.5);
      else if (k === "-" || k === "_") board.zoom(2);
      else if (k === "0") board.setView(0, data.duration_ms);
      else if (k === "ArrowLeft" && ev.target === canvas) board.pan(-0.2);
      else if (k === "ArrowRight" && ev.target === canvas) board.pan(0.2);
      else return;
      ev.preventDefault();
    });

    function on(id, event, fn) { var el = document.getElementById(id); if (el) el.addEventListener(event, fn); return el; }
    on("tl-zoom-in", "click", function () { board.zoom(0.5); });
    on("tl-zoom-out", "click", function () { board.zoom(2); });
    on("tl-zoom-all", "click", function () { board.setView(0, data.duration_ms); });
    on("tl-colour", "change", function (ev) { board.colourBy = ev.target.value; buildLegend(); board.draw(); });
    on("tl-code", "change", function (ev) { board.filter.code = ev.target.value; board.draw(); });
    var coderSelect = document.getElementById("tl-coder");
    if (coderSelect) {
      // one option per researcher who coded this recording: show that coder's layer alone
      var seen = {};
      data.lanes.researcher.forEach(function (c) {
        if (seen[c.coder]) return;
        seen[c.coder] = true;
        var opt = document.createElement("option"); opt.value = c.coder; opt.textContent = c.coder;
        coderSelect.appendChild(opt);
      });
      coderSelect.addEventListener("change", function (ev) { board.filter.coder = ev.target.value; board.draw(); });
    }
    ["therapist", "client", "researcher"].forEach(function (role) {
      on("tl-lane-" + role, "change", function (ev) { board.filter.lanes[role] = ev.target.checked; board.draw(); });
    });
    function rating(id, key) {
      on(id, "change", function (ev) { board.filter[key] = ev.target.value === "" ? null : Number(ev.target.value); board.draw(); });
    }
    rating("tl-rmin", "rmin"); rating("tl-rmax", "rmax");

    var slider = document.getElementById("tl-tolerance"), out = document.getElementById("tl-tolerance-out"), timer = null, asked = 0;
    if (slider) {
      slider.addEventListener("input", function () {
        var tol = Number(slider.value);
        out.textContent = (tol / 1000).toFixed(1) + " s";
        clearTimeout(timer);
        timer = setTimeout(function () {
          var mine = ++asked;
          fetchJson(data.urls.data + "?tolerance_ms=" + tol).then(function (payload) {
            if (mine !== asked) return;
            board.setMatching(payload);
            if (board.selected !== null && board.byId[board.selected]) {
              var s = board.byId[board.selected]; select(s.role, s.m, false);
            }
            history.replaceState(null, "", "?tolerance_ms=" + tol);
            if (window.htmx) window.htmx.ajax("GET", data.urls.figures + "?tolerance_ms=" + tol, { target: "#figures", swap: "outerHTML" });
          });
        }, 200);
      });
    }

    function buildLegend() {
      var box = document.getElementById("tl-legend-colours");
      if (!box) return;
      box.textContent = "";
      var entries = [];
      if (board.colourBy === "rating" && board.scale) {
        for (var v = board.scale.min; v <= board.scale.max; v++) {
          entries.push([ratingColour(v, board.scale), v + (board.scale.labels && board.scale.labels[String(v)] ? " " + board.scale.labels[String(v)] : "")]);
        }
        entries.push(["#c9ced4", "no rating"]);
      } else if (board.colourBy === "code") {
        (data.codes || []).forEach(function (c) { entries.push([c.colour, c.name]); });
        entries.push(["#9aa3ad", "no code"]);
      } else {
        entries.push([ROLE.therapist, "therapist"], [ROLE.client, "client"]);
      }
      entries.forEach(function (e) {
        var item = document.createElement("span"), key = document.createElement("span");
        key.className = "key"; key.style.background = e[0];
        item.appendChild(key); item.appendChild(document.createTextNode(e[1]));
        box.appendChild(item);
      });
    }
    buildLegend();

    var playing = false;
    function frame() {
      if (!playing) return;
      var t = video.currentTime * 1000, span = board.view.end - board.view.start;
      if (t > board.view.end || t < board.view.start) board.setView(t - span * 0.1, span);
      else board.draw();
      requestAnimationFrame(frame);
    }
    if (video) {
      video.addEventListener("play", function () { playing = true; requestAnimationFrame(frame); });
      video.addEventListener("pause", function () { playing = false; board.draw(); });
      video.addEventListener("seeked", function () { board.draw(); });
    }
    window.addEventListener("resize", function () { board.draw(); });
    board.draw();
    // #moment-<id> (a search result's link): open the timeline at that moment
    var wanted = /^#moment-(\d+)$/.exec(window.location.hash);
    if (wanted && board.byId[+wanted[1]]) {
      var found = board.byId[+wanted[1]];
      select(found.role, found.m, true);
    }
    Promise.all([
      fetchJson(data.urls.waveform).catch(function () { return null; }),
      fetchJson(data.urls.analysis).catch(function () { return null; }),
    ]).then(function (res) {
      board.wave = res[0]; board.analysis = res[1]; board.prepare(); board.draw();
      canvas.setAttribute("data-ready", "1");
    });
    window.iprTimeline = board;
  }

  function initMinis() {
    document.querySelectorAll("canvas.tl-mini:not([data-drawn])").forEach(function (canvas) {
      canvas.setAttribute("data-drawn", "1");
      var node = document.getElementById(canvas.getAttribute("data-source"));
      if (!node) return;
      var board = new Board(canvas, JSON.parse(node.textContent), { mini: true });
      board.draw();
      window.addEventListener("resize", function () { board.draw(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initPage(); initMinis(); });

  // figures are computed by the worker: when a polled panel (or dyad page) arrives fresh,
  // draw the new pairs too
  document.addEventListener("htmx:afterSettle", function () {
    initMinis();
    var panel = document.getElementById("figures"), board = window.iprTimeline;
    if (!panel || !board || panel.getAttribute("data-state") !== "fresh") return;
    var st = board.data.figures_status;
    if (st && st.state === "fresh") return;
    fetchJson(board.data.urls.data + "?tolerance_ms=" + board.data.tolerance_ms).then(function (payload) {
      board.data.figures_status = payload.figures_status;
      board.setMatching(payload);
    });
  });
})();
