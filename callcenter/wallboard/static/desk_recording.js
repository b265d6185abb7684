// The agent's desktop: the recording of the agent's current call. "Mute recording" while the
// customer gives card details (the file keeps silence there), "Resume recording", and
// "Record" when the call's queue or campaign records on demand and nothing records it yet.
// What records the call is asked once when a call starts and once more a moment later (the
// call log is up to a second behind the phone), and a moment after each action; never polled.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const $ = (id) => document.getElementById(id);
  let current = null; // the uniqueid of the call shown
  let later = null;

  function say(text, ok) {
    const el = $("message");
    el.textContent = text;
    el.hidden = !text;
    el.classList.toggle("ok", Boolean(ok));
  }

  function show(call) {
    const box = $("recording");
    if (!call || call.policy === "none") { box.hidden = true; return; }
    box.hidden = false;
    $("rec-state").textContent = call.recording
      ? (call.muted ? "Recording muted" : "Recording")
      : (call.can_record ? "Not recorded" : "Not recorded (" + call.policy + ")");
    $("rec-mute").hidden = !call.recording || call.muted;
    $("rec-resume").hidden = !call.recording || !call.muted;
    $("rec-record").hidden = !call.can_record;
  }

  async function refresh() {
    const response = await fetch("/agent/recording", {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    const data = await response.json();
    if (data.call && data.call.uniqueid === current) show(data.call);
    else if (!data.call) show(null);
  }

  async function act(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ ...body, csrf }),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { ok: false, error: response.statusText }; }
    if (!response.ok || !data.ok) { say(data.error || `${response.status} ${response.statusText}`); return; }
    show(data.call);
    // The call log learns of it from Asterisk within a second or so: look again then (and
    // not before: an earlier look could still show the state from before the action).
    clearTimeout(later);
    later = setTimeout(refresh, 2000);
    return data;
  }

  // desk.js passes on each "state" event of /agent/events (one stream per page).
  document.addEventListener("desk-state", (e) => {
    const s = e.detail;
    const call = s.state === "on_call" && s.call ? s.call : null;
    if (call === current) return;
    current = call;
    clearTimeout(later);
    show(null);
    if (call) { refresh(); later = setTimeout(refresh, 1500); }
  });

  $("rec-mute").addEventListener("click", async () => {
    if (await act("/agent/recording/mute", { on: "true" })) say("Recording muted: resume it when done", true);
  });
  $("rec-resume").addEventListener("click", async () => {
    if (await act("/agent/recording/mute", { on: "false" })) say("Recording resumed", true);
  });
  $("rec-record").addEventListener("click", async () => {
    if (await act("/agent/recording/record", {})) say("Recording this call", true);
  });
})();
