"use strict";
// The live face at "/sessions/<connection_id>": frames and audio of that session
// arrive over the viewer WebSocket of the same origin. Both are played on one
// clock: frame k of a request is shown LEAD seconds after its first frame arrived
// plus k * 40 ms, and audio sample s at the same start plus s / sample_rate, so
// the mouth and the sound stay in sync whatever the network jitter (up to LEAD).
// When frames stop coming (pause, interrupt) the mouth rests after STALL frames;
// a frame that then arrives later than its slot re-anchors the clock (audio too).
(function () {
  const LEAD = 0.2;
  const FRAME_S = 0.04;
  const STALL = 5;
  const cid = decodeURIComponent(location.pathname.split("/").pop() || "");
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const face = new window.AvatarFace($("face"));
  const muteButton = $("mute");
  $("connection-id").textContent = cid;

  const state = {
    connected: false, framesReceived: 0, audioChunks: 0, played: [], sessionState: "",
    muted: true, audioScheduledSeconds: 0, audioLateSeconds: 0,
  };
  window.avatarViewer = state; // read by tests and curious developers
  let ws = null;
  let retry = 0;
  let current = null; // the request being shown
  let audio = null; // { ctx, gain } once unmuted
  let muted = true;

  const clock = () => performance.now() / 1000;

  function newRequest(reqId) {
    return {
      reqId, start: null, frames: [], last: -1, ended: false, endIndex: -1, chunks: [],
      sources: [], reported: false,
    };
  }

  function request(reqId) {
    if (current && current.reqId === reqId) return current;
    // A new request preempts the one shown (the service interrupts it too).
    current = newRequest(reqId);
    $("req-id").textContent = reqId;
    return current;
  }

  function schedule(r, chunk) {
    if (!audio || r.start === null) return;
    const { ctx, gain } = audio;
    const at = r.start + chunk.offset / chunk.rate; // on our clock
    const when = ctx.currentTime + (at - clock());
    const duration = chunk.samples.length / chunk.rate;
    const skip = Math.max(0, ctx.currentTime - when);
    state.audioLateSeconds += Math.min(skip, duration);
    if (skip >= duration) return;
    state.audioScheduledSeconds += duration - skip;
    const buffer = ctx.createBuffer(1, chunk.samples.length, chunk.rate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < chunk.samples.length; i++) data[i] = chunk.samples[i] / 32768;
    const src = ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(gain);
    src.start(Math.max(when, ctx.currentTime), skip);
    r.sources.push(src);
    src.onended = () => {
      const i = r.sources.indexOf(src);
      if (i >= 0) r.sources.splice(i, 1);
    };
  }

  // Frame `index` arrived long after its slot (the output was paused): show it
  // LEAD from now and move the audio not yet played along with it.
  function reanchor(r, index) {
    r.start = clock() + LEAD - index * FRAME_S;
    state.reanchored = (state.reanchored || 0) + 1;
    for (const src of r.sources.splice(0)) {
      try { src.stop(); } catch (e) { /* already ended */ }
    }
    for (const chunk of r.chunks) schedule(r, chunk);
  }

  function onFrame(msg) {
    const r = request(msg.req_id);
    state.framesReceived++;
    if (r.start === null) {
      r.start = clock() + LEAD;
      for (const chunk of r.chunks) schedule(r, chunk);
    }
    if (msg.bs) {
      r.frames[msg.index] = msg;
      r.last = Math.max(r.last, msg.index);
      if (Math.floor((clock() - r.start) / FRAME_S) > msg.index + STALL) reanchor(r, msg.index);
    }
    if (msg.end) {
      r.ended = true;
      r.endIndex = r.last;
    }
  }

  function onAudio(buffer) {
    const view = new DataView(buffer);
    const headLen = view.getUint32(0, true);
    const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headLen)));
    const samples = new Int16Array(buffer.slice(4 + headLen));
    const r = request(head.req_id);
    const chunk = { offset: head.offset, rate: head.sample_rate, samples };
    r.chunks.push(chunk);
    state.audioChunks++;
    schedule(r, chunk);
  }

  function tick() {
    const r = current;
    if (!r || r.start === null) return;
    const k = Math.floor((clock() - r.start) / FRAME_S);
    if (k < 0) return;
    if (r.ended && k > r.endIndex) {
      face.update(null, "sil");
      $("viseme").textContent = "sil";
      $("jaw-open").textContent = "0.000";
      if (!r.reported) {
        r.reported = true;
        state.played.push(r.reqId);
        if (ws && ws.readyState === WebSocket.OPEN) {
          ws.send(JSON.stringify({ type: "played", req_id: r.reqId }));
        }
      }
      return;
    }
    if (!r.ended && k > r.last + STALL) { // no frame for a while: paused or interrupted
      face.update(null, "sil");
      $("viseme").textContent = "sil";
      $("jaw-open").textContent = "0.000";
      return;
    }
    let i = Math.min(k, r.last);
    while (i >= 0 && !r.frames[i]) i--;
    if (i < 0) return;
    const f = r.frames[i];
    face.update(f.bs, f.viseme);
    $("viseme").textContent = f.viseme;
    $("frame-index").textContent = String(f.index);
    $("jaw-open").textContent = Number(f.bs.jawOpen || 0).toFixed(3);
    $("frames-received").textContent = String(state.framesReceived);
  }

  function onSessions(list) {
    const mine = list.find((s) => s.connection_id === cid);
    const text = mine ? `${mine.state}${mine.egress ? ", egress " + mine.egress : ""}` +
      (mine.close_code === null ? "" : `, close code ${mine.close_code}`) : "not found";
    state.sessionState = mine ? mine.state : "unknown";
    $("session-state").textContent = text;
    if (mine && mine.state === "closed") {
      status.className = "status";
      status.textContent = "this session is closed: nothing more will play";
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(scheme + "//" + location.host + "/v1/dev/viewer/ws?session=" + encodeURIComponent(cid));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      retry = 0;
      state.connected = true;
      status.className = "status";
      status.textContent = "connected: frames appear as the session produces them";
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return onAudio(ev.data);
      const msg = JSON.parse(ev.data);
      if (msg.type === "frame") onFrame(msg);
      else if (msg.type === "sessions") onSessions(msg.sessions);
      else if (msg.type === "unknown_session") {
        status.className = "status error";
        status.textContent = "no session " + cid + " on this service (it may be older than the last 100)";
      }
    };
    ws.onclose = () => {
      state.connected = false;
      status.className = "status error";
      status.textContent = "cannot connect to the local avatar service at " + location.host +
        " (is it still running?); retrying…";
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }

  muteButton.addEventListener("click", () => {
    if (!audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = new Ctx();
      const gain = ctx.createGain();
      gain.connect(ctx.destination);
      audio = { ctx, gain };
      if (current) for (const chunk of current.chunks) schedule(current, chunk);
    }
    muted = !muted;
    state.muted = muted;
    audio.gain.gain.value = muted ? 0 : 1;
    if (!muted) audio.ctx.resume();
    muteButton.textContent = muted ? "Unmute audio" : "Mute audio";
    muteButton.setAttribute("aria-pressed", String(muted));
  });

  setInterval(tick, 20);
  connect();
})();
