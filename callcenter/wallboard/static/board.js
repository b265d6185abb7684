// The live board: applies the server's pushes (/events, server-sent events) to the page the
// server rendered, and ticks waits and times in state every second. Formats and alert rules
// mirror callcenter/wallboard/fmt.py: keep the two in step.
(function () {
  "use strict";
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  var limits = JSON.parse(meta("thresholds") || "{}");
  var offset = parseFloat(meta("server-now")) - Date.now() / 1000; // server clock - ours
  var queues = {}, queueKpis = {}, agents = {}, agentKpis = {}, nodes = [];
  // By name; no prototype, so that a campaign named "constructor" is not there already.
  var campaigns = Object.create(null);
  var status = { feed: true, bridge_online: null }, kpiError = null;
  var labels = { available: "Available", ringing: "Ringing", on_call: "On call",
    wrap_up: "Wrap-up", paused: "Paused", unavailable: "Unavailable", logged_out: "Logged out",
    unknown: "Unknown" };

  function now() { return Date.now() / 1000 + offset; }
  function duration(s) {
    if (s === null || s === undefined || s === "") return "-";
    var t = Math.max(0, Math.floor(s)), h = Math.floor(t / 3600), m = Math.floor(t % 3600 / 60);
    var sec = t % 60, pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(sec) : m + ":" + pad(sec);
  }
  function pct(r) { return r === null || r === undefined ? "-" : Math.round(r * 100) + "%"; }
  function pct1(r) { return r === null || r === undefined ? "-" : (r * 100).toFixed(1) + "%"; }
  // Satisfaction (callcenter/satisfaction/measures.py fmt_csat, fmt_nps): "—" with no answer.
  function csat(r) { return r === null || r === undefined ? "\u2014" : Math.round(r * 100) + "%"; }
  function nps(v) {
    if (v === null || v === undefined) return "\u2014";
    var n = Math.round(v);
    return n > 0 ? "+" + n : String(n === 0 ? 0 : n);
  }
  function level(field, v) {
    if (v === null || v === undefined || v === "") return "";
    if (field === "waiting") return v >= limits.waiting_alert ? "alert" : "";
    if (field === "longest_wait_since") return now() - v >= limits.longest_wait_alert ? "alert" : "";
    if (field === "service_level") return v < limits.sl_target ? "alert" : "ok";
    if (field === "abandon_rate") return v > limits.abandon_rate_alert ? "alert" : "";
    return "";
  }
  function setLevel(el, field, v) {
    var lv = level(field, v);
    el.classList.toggle("alert", lv === "alert");
    el.classList.toggle("ok", lv === "ok");
  }
  function show(el, v, unknown) {
    var f = el.dataset.fmt, text;
    // A live figure of a row whose nodes are all down: unknown, not the last value known.
    if (unknown && el.hasAttribute("data-live")) {
      el.dataset.unknown = "1";
      if (f === "tick") el.dataset.since = "";
      if (el.textContent !== "?") el.textContent = "?";
      el.classList.remove("alert", "ok");
      return;
    }
    delete el.dataset.unknown;
    if (f === "int") text = String(v === undefined || v === null ? 0 : v);
    else if (f === "pct") text = pct(v);
    else if (f === "pct1") text = pct1(v);
    else if (f === "csat") text = csat(v);
    else if (f === "nps") text = nps(v);
    else if (f === "dur") text = duration(v);
    else if (f === "sec") text = v === undefined || v === null ? "" : v + " s";
    else if (f === "state") text = labels[v] || v || "";
    else if (f === "list") text = (v || []).join(", ");
    else if (f === "tick") {
      el.dataset.since = v === null || v === undefined ? "" : v;
      text = el.dataset.since ? duration(now() - v) : "-";
    } else text = v === undefined || v === null ? "" : String(v);
    if (el.textContent !== text) el.textContent = text;
    if (el.dataset.level) setLevel(el, el.dataset.level, v);
  }
  function fill(root, row) {
    root.querySelectorAll("[data-f]").forEach(function (el) {
      show(el, row[el.dataset.f], row.unknown);
    });
  }
  function queueNote(row) {
    var down = row.down || [];
    if (down.length) {
      return (down.length === 1 ? "node " : "nodes ") + down.join(", ") + " down: " +
        (row.unknown ? "live figures unknown" : "live figures of the other nodes only");
    }
    if (!row.live && row.configured) return "not in Asterisk yet (callcenter asterisk reload)";
    return "";
  }
  function fillQueue(el, row) {
    var down = row.down || [];
    el.classList.toggle("unknown", !!row.unknown);
    el.classList.toggle("partial", down.length > 0 && !row.unknown);
    el.classList.toggle("not-live", !row.live);
    el.title = queueNote(row);
    fill(el, row);
  }

  // --- rows ----------------------------------------------------------------------------
  function upsert(containerId, tplId, key, sortKey, build) {
    var box = document.getElementById(containerId);
    if (!box) return null;
    var el = null;
    for (var i = 0; i < box.children.length; i++) {
      if (box.children[i].dataset.key === key) { el = box.children[i]; break; }
    }
    if (!el) {
      el = document.getElementById(tplId).content.firstElementChild.cloneNode(true);
      el.dataset.key = key;
      el.dataset.sort = sortKey;
      var before = null;
      for (var j = 0; j < box.children.length; j++) {
        var other = box.children[j].dataset.sort || box.children[j].dataset.key;
        if (other > sortKey) { before = box.children[j]; break; }
      }
      box.insertBefore(el, before);
    }
    build(el);
    return el;
  }
  function renderQueue(name) {
    var row = Object.assign({ queue: name, title: name, alias: "" }, queueKpis[name] || {},
      queues[name] || {});
    upsert("queues", "queue-tpl", name, name, function (el) { fillQueue(el, row); });
  }
  function removeQueue(name) {
    delete queues[name];
    var box = document.getElementById("queues");
    if (!box) return;
    Array.prototype.slice.call(box.children).forEach(function (el) {
      if (el.dataset.key === name) box.removeChild(el);
    });
  }
  function renderTotal(row) {
    var box = document.getElementById("queue-total");
    if (box && box.firstElementChild) fillQueue(box.firstElementChild, row);
  }
  // Campaigns (the dialer's snapshots): levels come with the row (board.py's rate_level).
  var LEVELS = ["alert", "warn", "ok"];
  function renderCampaign(name) {
    var row = campaigns[name];
    upsert("campaigns", "campaign-tpl", name, name, function (el) {
      el.className = el.className.replace(/\bstate-\S*/g, "").trim() + " state-" + row.state;
      fill(el, row);
      el.querySelectorAll("[data-lv]").forEach(function (f) {
        var lv = row[f.dataset.lv] || "";
        LEVELS.forEach(function (name) { f.classList.toggle(name, lv === name); });
      });
    });
  }
  function removeCampaign(name) {
    delete campaigns[name];
    var box = document.getElementById("campaigns");
    if (!box) return;
    Array.prototype.slice.call(box.children).forEach(function (el) {
      if (el.dataset.key === name) box.removeChild(el);
    });
  }
  function showCampaigns() {
    var section = document.getElementById("campaign-box");
    if (section) section.hidden = Object.keys(campaigns).length === 0;
  }
  function agentSort(a) { return a.agent.toLowerCase() + " " + a.node; }
  function renderAgent(key) {
    var a = agents[key];
    var row = Object.assign({}, a, { calls: (agentKpis[a.agent] || {}).calls || 0 });
    upsert("agents", "agent-tpl", key, agentSort(a), function (el) {
      el.className = el.className.replace(/\bstate-\S*/g, "").trim() + " state-" + a.state;
      el.classList.toggle("disabled", a.enabled === false);
      el.querySelectorAll("form.act").forEach(function (form) {
        form.action = "/agents/" + encodeURIComponent(a.node) + "/" +
          encodeURIComponent(a.agent) + "/" + form.dataset.action;
      });
      fill(el, row);
    });
  }
  function removeAgent(key) {
    delete agents[key];
    var box = document.getElementById("agents");
    if (!box) return;
    Array.prototype.slice.call(box.children).forEach(function (el) {
      if (el.dataset.key === key) box.removeChild(el);
    });
  }
  function renderNodes(rows) {
    nodes = rows;
    var ul = document.getElementById("nodes");
    if (!ul) return;
    ul.textContent = "";
    rows.forEach(function (n) {
      var li = document.createElement("li");
      // Mirrors templates/_header.html.j2.
      li.className = "node " + (!n.known ? "unknown" : n.down || !n.connected ? "down" : "up");
      li.title = n.detail || "";
      li.dataset.node = n.node;
      li.textContent = n.node + ": " + (!n.known ? "no news" : !n.connected ? "DOWN" :
        n.down ? "unknown" : "connected");
      ul.appendChild(li);
    });
  }
  // Mirrors the server's banner (templates/board.html.j2).
  function renderBanner() {
    var el = document.getElementById("banner");
    if (!el) return;
    var warnings = [];
    var down = nodes.filter(function (n) { return n.down; });
    if (!status.feed) warnings.push("Live feed lost: reconnecting to the broker.");
    if (status.bridge_online === false) {
      warnings.push("The AMI bridge is offline: every queue and agent figure is unknown.");
    } else if (down.length) {
      var one = down.length === 1;
      warnings.push((one ? "Asterisk node " : "Asterisk nodes ") +
        down.map(function (n) { return n.node; }).join(", ") + (one ? " is DOWN" : " are DOWN") +
        (one && down[0].detail ? " (" + down[0].detail + ")" : "") + ": " +
        (one ? "its" : "their") + " queues and agents are unknown.");
    }
    if (kpiError) warnings.push(kpiError);
    if (status.sip_alert) warnings.push(status.sip_alert); // callcenter/security/alerts.py
    var text = warnings.join(" ");
    if (el.textContent !== text) el.textContent = text;
    el.hidden = !text;
  }
  function takeKpis(k) {
    queueKpis = k.queues || {};
    agentKpis = k.agents || {};
    kpiError = k.error || null;
    Object.keys(queueKpis).forEach(function (q) { if (!(q in queues)) queues[q] = { queue: q }; });
    Object.keys(queues).forEach(renderQueue);
    Object.keys(agents).forEach(renderAgent);
  }

  // --- the stream ----------------------------------------------------------------------
  function onSnapshot(data) {
    queues = {};
    data.queues.forEach(function (q) { queues[q.queue] = q; });
    var qbox = document.getElementById("queues");
    if (qbox) Array.prototype.slice.call(qbox.children).forEach(function (el) {
      if (!(el.dataset.key in queues) && !(el.dataset.key in (data.kpis.queues || {}))) {
        qbox.removeChild(el);
      }
    });
    var keep = {};
    agents = {};
    data.agents.forEach(function (a) { agents[a.key] = a; keep[a.key] = true; });
    var box = document.getElementById("agents");
    if (box) Array.prototype.slice.call(box.children).forEach(function (el) {
      if (!keep[el.dataset.key]) box.removeChild(el);
    });
    campaigns = Object.create(null);
    (data.campaigns || []).forEach(function (c) { campaigns[c.campaign] = c; });
    var cbox = document.getElementById("campaigns");
    if (cbox) Array.prototype.slice.call(cbox.children).forEach(function (el) {
      if (!(el.dataset.key in campaigns)) cbox.removeChild(el);
    });
    Object.keys(campaigns).forEach(renderCampaign);
    showCampaigns();
    status = data.status;
    renderNodes(data.nodes);
    takeKpis(data.kpis);
    renderTotal(data.total);
    renderBanner();
  }
  function onDelta(data) {
    offset = data.now - Date.now() / 1000;
    (data.queues || []).forEach(function (q) { queues[q.queue] = q; renderQueue(q.queue); });
    (data.agents || []).forEach(function (a) { agents[a.key] = a; renderAgent(a.key); });
    (data.gone || []).forEach(removeAgent);
    (data.gone_queues || []).forEach(removeQueue);
    (data.campaigns || []).forEach(function (c) {
      campaigns[c.campaign] = c;
      renderCampaign(c.campaign);
    });
    (data.gone_campaigns || []).forEach(removeCampaign);
    if (data.campaigns || data.gone_campaigns) showCampaigns();
    if (data.nodes) renderNodes(data.nodes);
    if (data.status) status = data.status;
    if (data.kpis) takeKpis(data.kpis);
    if (data.total) renderTotal(data.total);
    renderBanner();
    document.body.dataset.version = data.version;
  }
  function connect() {
    var source = new EventSource("/events");
    source.addEventListener("snapshot", function (e) { onSnapshot(JSON.parse(e.data)); });
    source.addEventListener("delta", function (e) { onDelta(JSON.parse(e.data)); });
    source.addEventListener("clock", function (e) {
      offset = JSON.parse(e.data).now - Date.now() / 1000;
      document.body.dataset.live = "1";
    });
    source.onerror = function () {
      document.body.dataset.live = "0";
      // CLOSED: the server refused the stream (session ended): the login page says why.
      if (source.readyState === EventSource.CLOSED) window.location.reload();
    };
  }

  // --- ticking -------------------------------------------------------------------------
  var clock = document.getElementById("clock"), clockFmt = null;
  try {
    clockFmt = new Intl.DateTimeFormat([], { timeZone: clock.dataset.tz, hour: "2-digit",
      minute: "2-digit", second: "2-digit", hour12: false });
  } catch (err) { clockFmt = null; }
  function tick() {
    document.querySelectorAll('[data-fmt="tick"]').forEach(function (el) {
      if (el.dataset.unknown === "1") return;
      var since = el.dataset.since;
      el.textContent = since ? duration(now() - parseFloat(since)) : "-";
      if (el.dataset.level) setLevel(el, el.dataset.level, since ? parseFloat(since) : null);
    });
    if (clock && clockFmt) clock.textContent = clockFmt.format(new Date(now() * 1000));
  }

  // --- supervisor actions: the same forms, sent with fetch so the board stays put --------
  function notice(text, isError) {
    var el = document.getElementById("notice");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", !!isError);
    el.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { el.hidden = true; }, 4000);
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.classList || !form.classList.contains("act")) return;
    e.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    fetch(form.action, {
      method: "POST", credentials: "same-origin", headers: { Accept: "application/json" },
      body: new URLSearchParams(new FormData(form))
    }).then(function (r) {
      return r.text().then(function (text) {
        var body;
        try { body = JSON.parse(text); } catch (err) { body = { error: text }; }
        if (r.ok) notice(body.message || (body.action + ": " + body.agent + " - sent to Asterisk"), false);
        else notice(body.error || ("failed: " + r.status), true);
      });
    }).catch(function () { notice("the server could not be reached", true); });
  });

  tick();
  setInterval(tick, 1000);
  connect();
})();
