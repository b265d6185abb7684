// The agent's desktop: state, screen-pop and history pushed by the server (/agent/events),
// actions posted with the session's CSRF token. Data is written with textContent only.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const $ = (id) => document.getElementById(id);
  let call = null; // the popped call: {node, uniqueid, queue, ...}
  let history = null;
  let stateSince = null;

  function say(text, ok) {
    const el = $("message");
    el.textContent = text;
    el.hidden = !text;
    el.classList.toggle("ok", Boolean(ok));
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ ...body, csrf }),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { ok: false, error: response.statusText }; }
    if (!response.ok || !data.ok) {
      say(data.error || `${response.status} ${response.statusText}`);
      return null;
    }
    return data;
  }

  function text(el, value) { el.textContent = value == null || value === "" ? "—" : String(value); }

  function item(list, value) {
    const li = document.createElement("li");
    li.textContent = value;
    list.appendChild(li);
    return li;
  }

  function showState(s) {
    const badge = $("state");
    const label = s.state === "paused" && s.reason ? `paused (${s.reason})` : s.state;
    badge.textContent = label.replace("_", " ");
    badge.dataset.state = s.state;
    stateSince = typeof s.since === "number" ? s.since : null;
    tick();
  }

  function tick() {
    if (stateSince == null) { $("since").textContent = ""; return; }
    const secs = Math.max(0, Math.floor(Date.now() / 1000 - stateSince));
    const m = Math.floor(secs / 60), r = secs % 60;
    $("since").textContent = `${m}:${String(r).padStart(2, "0")}`;
  }
  setInterval(tick, 1000);

  async function loadCodes() {
    const q = new URLSearchParams({ node: call.node, uniqueid: call.uniqueid, queue: call.queue || "" });
    const response = await fetch(`/agent/codes?${q}`, { headers: { Accept: "application/json" } });
    const select = $("codes");
    select.replaceChildren();
    if (!response.ok) return;
    const data = await response.json();
    for (const c of data.codes) {
      const o = document.createElement("option");
      o.value = c.code;
      o.textContent = c.label ? `${c.code} — ${c.label}` : c.code;
      select.appendChild(o);
    }
  }

  function showPop(p) {
    call = p;
    history = null;
    $("no-call").hidden = true;
    $("pop").hidden = false;
    $("dispose").hidden = false;
    $("transfer").hidden = false;
    text($("pop-caller"), [p.caller_number, p.caller_name].filter(Boolean).join(" "));
    $("callback").elements.number.value = p.caller_number || "";
    text($("pop-queue"), p.queue);
    text($("pop-ivr"), p.ivr_path);
    const waited = p.queued_at ? Math.max(0, Math.round(p.at - p.queued_at)) : null;
    text($("pop-wait"), waited == null ? "" : `${waited} s`);
    text($("pop-contact"), "");
    for (const id of ["cases", "past-calls"]) $(id).replaceChildren();
    for (const id of ["dispose", "new-case", "new-customer"]) $(id).reset();
    $("case-choice").replaceChildren(new Option("none", ""));
    say("");
    text($("customer"), "…");
    $("survey").textContent = "";
    loadCodes();
  }

  function showHistory(h) {
    if (!call || h.uniqueid !== call.uniqueid) return;
    history = h;
    if (h.error) { say(h.error); return; }
    const c = h.customer;
    text($("customer"), c ? `${c.name || ""} ${(c.phones || []).join(", ")}`.trim() : "not a customer yet");
    $("new-customer").hidden = Boolean(c);
    $("new-case").hidden = !c;
    if (h.contact) {
      const fields = Object.entries(h.contact.fields || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
      text($("pop-contact"), `${h.contact.name || ""} ${h.contact.phone} (${h.contact.campaign}) ${fields}`);
    }
    const cases = $("cases"), choice = $("case-choice");
    cases.replaceChildren();
    choice.replaceChildren(new Option("none", ""));
    for (const k of h.open_cases || []) {
      item(cases, `${k.number} ${k.category} ${k.priority} ${k.status}: ${k.subject || ""}`);
      choice.appendChild(new Option(`${k.number} ${k.subject || k.category}`, k.number));
    }
    const past = $("past-calls");
    past.replaceChildren();
    for (const pc of h.calls || []) {
      const d = (pc.dispositions || []).map((x) => x.undocumented ? "not documented"
        : `${x.code}${x.notes ? ": " + x.notes : ""}${x.case ? " [" + x.case + "]" : ""}`).join("; ");
      item(past, `${pc.started_at.slice(0, 16).replace("T", " ")} ${pc.queue || ""} ${pc.agent || ""} ${pc.outcome || ""}${d ? " — " + d : ""}`);
    }
    if (h.survey_mean != null) $("survey").textContent = `survey: ${h.survey_mean} over ${h.survey_scores.length} answers`;
  }

  const stream = new EventSource("/agent/events");
  stream.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    showState(s);
    // Other parts of the page (desk_recording.js) follow the agent's state too.
    document.dispatchEvent(new CustomEvent("desk-state", { detail: s }));
  });
  stream.addEventListener("pop", (e) => showPop(JSON.parse(e.data)));
  stream.addEventListener("history", (e) => showHistory(JSON.parse(e.data)));

  for (const button of document.querySelectorAll("button[data-act]")) {
    button.addEventListener("click", async () => {
      const act = button.dataset.act;
      const body = act === "pause" ? { reason: $("pause-reason").value } : {};
      if (await post(`/agent/state/${act}`, body)) say(`${act}: sent to Asterisk`, true);
    });
  }

  $("dispose").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!call) return;
    const f = new FormData(e.target);
    const data = await post("/agent/dispose", {
      node: call.node, uniqueid: call.uniqueid, queue: call.queue || "",
      code: f.get("code"), notes: f.get("notes"), case: f.get("case"),
      callback_at: f.get("callback_at") || "", callback_number: call.caller_number || "",
    });
    if (data) {
      const cb = data.disposition.callback;
      say(`Disposition ${data.disposition.code} saved${cb ? `; callback to ${cb.phone} at ${cb.at}` : ""}`, true);
    }
  });

  $("new-customer").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!call) return;
    const f = new FormData(e.target);
    const data = await post("/agent/customer", { name: f.get("name"), phone: call.caller_number });
    if (data) {
      say("Customer created", true);
      showHistory({ ...(history || { uniqueid: call.uniqueid }), customer: data.customer });
    }
  });

  $("new-case").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!call || !history || !history.customer) return;
    const f = new FormData(e.target);
    const data = await post("/agent/case", {
      customer_id: history.customer.id, category: f.get("category"), priority: f.get("priority"),
      subject: f.get("subject"), note: f.get("note"), node: call.node, uniqueid: call.uniqueid,
    });
    if (data) {
      say(`Case ${data.case.number} opened`, true);
      item($("cases"), `${data.case.number} ${data.case.category} ${data.case.priority} open: ${data.case.subject || ""}`);
      $("case-choice").appendChild(new Option(`${data.case.number} ${data.case.subject || ""}`, data.case.number));
    }
  });

  $("transfer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const data = await post("/agent/transfer", {
      queue: f.get("queue") || "", agent: f.get("agent") || "", attended: f.get("attended") ? "true" : "",
    });
    if (data) say(`Transferred to ${data.to}`, true);
  });

  $("callback").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const data = await post("/agent/callback", {
      number: f.get("number"), at: f.get("at"), for: f.get("for"), note: f.get("note"),
      uniqueid: call ? call.uniqueid : "",
    });
    if (data) say(`Callback to ${data.callback.phone} booked for ${data.callback.at}`, true);
  });

  $("dial").addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = await post("/agent/call", { number: new FormData(e.target).get("number") });
    if (data) say(`Calling ${data.number}: your phone rings first`, true);
  });

  for (const button of document.querySelectorAll("button[data-preview]")) {
    button.addEventListener("click", async () => {
      const f = new FormData($("preview"));
      const action = button.dataset.preview;
      const data = await post(`/agent/preview/${action}`, { campaign: f.get("campaign"), reason: f.get("reason") });
      if (!data) return;
      const dl = $("preview-contact");
      dl.replaceChildren();
      const c = data.contact;
      if (action === "take" && !c) { say("No contact due now", true); return; }
      if (c) {
        for (const [k, v] of [["Phone", c.phone], ["Name", c.name], ...Object.entries(c.fields || {})]) {
          const dt = document.createElement("dt"); dt.textContent = k;
          const dd = document.createElement("dd"); dd.textContent = String(v);
          dl.append(dt, dd);
        }
      } else {
        say(`${action}: ${data.phone}${data.reason ? " (" + data.reason + ")" : ""}`, true);
      }
    });
  }
})();
