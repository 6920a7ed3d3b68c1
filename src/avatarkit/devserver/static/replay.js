"use strict";
// The replay file of `avatarkit inspect --html`: one request's frames (and the audio
// that was sent, when known) embedded in the page; no network at all. Play/pause,
// a seek bar, and a timeline (waveform + blendshape curves) that seeks on click.
(function () {
  const FRAME_S = 0.04;
  const CURVES = [
    ["jawOpen", "#d62728"], ["mouthClose", "#1f77b4"], ["mouthFunnel", "#2ca02c"],
    ["mouthPucker", "#9467bd"], ["mouthSmileLeft", "#ff7f0e"], ["eyeBlinkLeft", "#7f7f7f"],
  ];
  const $ = (id) => document.getElementById(id);
  const rec = JSON.parse($("recording").textContent);
  const frames = rec.frames;
  const face = new window.AvatarFace($("face"));
  let samples = null;
  if (rec.audio) {
    const bytes = Uint8Array.from(atob(rec.audio.pcm), (c) => c.charCodeAt(0));
    samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  }
  const audioSeconds = samples ? samples.length / rec.audio.sample_rate : 0;
  const duration = Math.max(frames.length * FRAME_S, audioSeconds);
  const seekBar = $("seek");
  seekBar.max = String(duration);
  $("req-id").textContent = rec.req_id;
  $("audio-note").textContent = samples
    ? `audio: ${rec.audio.source} (${rec.audio.sample_rate} Hz), muted by default`
    : "no audio in this recording: the top lane shows the jawOpen curve";

  let playing = false;
  let position = 0;
  let startedAt = 0; // performance.now() / 1000 when play began at position startPos
  let startPos = 0;
  let audio = null; // { ctx, gain, buffer, src }
  let muted = true;
  const clock = () => performance.now() / 1000;

  // Timeline: drawn once into an offscreen canvas, then copied with the playhead.
  const canvas = $("timeline");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(300, Math.round(canvas.clientWidth * ratio)) || 900;
  canvas.height = Math.round(220 * ratio);
  const base = document.createElement("canvas");
  base.width = canvas.width;
  base.height = canvas.height;
  let curvesDrawn = 0;
  (function drawBase() {
    const g = base.getContext("2d");
    const W = base.width;
    const H = base.height;
    const top = Math.round(H * 0.32);
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, W, H);
    g.strokeStyle = "#555";
    g.lineWidth = 1;
    g.beginPath();
    if (samples) {
      const per = samples.length / W;
      for (let x = 0; x < W; x++) {
        let lo = 0;
        let hi = 0;
        const end = Math.min(samples.length, Math.floor((x + 1) * per));
        for (let i = Math.floor(x * per); i < end; i++) {
          const v = samples[i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        const xs = x * (audioSeconds / duration);
        g.moveTo(xs + 0.5, top / 2 - (hi / 32768) * (top / 2));
        g.lineTo(xs + 0.5, top / 2 - (lo / 32768) * (top / 2) + 1);
      }
    } else {
      frames.forEach((f, i) => {
        const x = (i * FRAME_S / duration) * W;
        const y = top - 4 - (f.bs.jawOpen || 0) * (top - 8);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
    }
    g.stroke();
    const lane = H - top - 18 * ratio;
    for (const [name, color] of CURVES) {
      g.strokeStyle = color;
      g.lineWidth = 1.5 * ratio;
      g.beginPath();
      frames.forEach((f, i) => {
        const x = ((i + 0.5) * FRAME_S / duration) * W;
        const y = top + 4 + (1 - (f.bs[name] || 0)) * (lane - 8);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      curvesDrawn++;
    }
    g.font = `${11 * ratio}px system-ui, sans-serif`;
    let lx = 6;
    for (const [name, color] of CURVES) {
      g.fillStyle = color;
      g.fillText(name, lx, H - 5 * ratio);
      lx += g.measureText(name).width + 14 * ratio;
    }
  })();

  function render() {
    const k = Math.floor(position / FRAME_S);
    const f = k < frames.length ? frames[Math.max(0, k)] : null;
    face.update(f ? f.bs : null, f ? f.v : "sil");
    $("time").textContent = position.toFixed(2) + " s";
    $("frame-index").textContent = f ? String(f.i) : "–";
    $("viseme").textContent = f ? f.v : "sil";
    $("jaw-open").textContent = (f ? Number(f.bs.jawOpen || 0) : 0).toFixed(3);
    seekBar.value = String(position);
    const g = canvas.getContext("2d");
    g.drawImage(base, 0, 0);
    const x = (position / duration) * canvas.width;
    g.strokeStyle = "#000";
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(x, 0);
    g.lineTo(x, canvas.height);
    g.stroke();
  }

  function stopAudio() {
    if (audio && audio.src) {
      audio.src.stop();
      audio.src = null;
    }
  }

  function startAudio() {
    if (!samples) return;
    if (!audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = new Ctx();
      const gain = ctx.createGain();
      gain.gain.value = muted ? 0 : 1;
      gain.connect(ctx.destination);
      const buffer = ctx.createBuffer(1, samples.length, rec.audio.sample_rate);
      const data = buffer.getChannelData(0);
      for (let i = 0; i < samples.length; i++) data[i] = samples[i] / 32768;
      audio = { ctx, gain, buffer, src: null };
    }
    stopAudio();
    if (position >= audioSeconds) return;
    audio.ctx.resume();
    const src = audio.ctx.createBufferSource();
    src.buffer = audio.buffer;
    src.connect(audio.gain);
    src.start(0, position);
    audio.src = src;
  }

  function play() {
    if (position >= duration) position = 0;
    playing = true;
    startPos = position;
    startedAt = clock();
    $("play").textContent = "Pause";
    startAudio();
  }

  function pause() {
    playing = false;
    $("play").textContent = "Play";
    stopAudio();
  }

  function seek(t) {
    position = Math.min(duration, Math.max(0, Number(t) || 0));
    if (playing) {
      startPos = position;
      startedAt = clock();
      startAudio();
    }
    render();
  }

  $("play").addEventListener("click", () => (playing ? pause() : play()));
  seekBar.addEventListener("input", () => seek(seekBar.value));
  canvas.addEventListener("click", (ev) => {
    const rect = canvas.getBoundingClientRect();
    seek(((ev.clientX - rect.left) / rect.width) * duration);
  });
  $("mute").addEventListener("click", () => {
    muted = !muted;
    if (audio) audio.gain.gain.value = muted ? 0 : 1;
    $("mute").textContent = muted ? "Unmute audio" : "Mute audio";
    $("mute").setAttribute("aria-pressed", String(muted));
  });
  setInterval(() => {
    if (!playing) return;
    position = startPos + (clock() - startedAt);
    if (position >= duration) {
      position = duration;
      pause();
    }
    render();
  }, 20);

  render();
  window.avatarReplay = {
    ready: true, duration, hasAudio: !!samples, seek,
    get position() { return position; },
    get curvesDrawn() { return curvesDrawn; },
  };
})();
