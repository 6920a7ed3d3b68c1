"use strict";
// The session list at "/": fed by the viewer WebSocket of the same origin.
(function () {
  const status = document.getElementById("status");
  const body = document.getElementById("sessions");
  let retry = 0;

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function render(sessions) {
    body.textContent = "";
    if (!sessions.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      const td = cell(row, "no sessions yet");
      td.colSpan = 8;
      body.appendChild(row);
      return;
    }
    for (const s of sessions.slice().reverse()) {
      const row = document.createElement("tr");
      row.dataset.connectionId = s.connection_id;
      row.dataset.state = s.state;
      const td = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/sessions/" + encodeURIComponent(s.connection_id);
      link.textContent = s.connection_id;
      td.appendChild(link);
      row.appendChild(td);
      cell(row, s.state);
      cell(row, s.app_id);
      cell(row, s.avatar_id);
      cell(row, s.egress || "–");
      cell(row, s.close_code === null ? "–" : String(s.close_code));
      cell(row, String(s.requests.length));
      cell(row, String(s.requests.reduce((n, r) => n + r.frames, 0)));
      body.appendChild(row);
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/v1/dev/viewer/ws");
    ws.onopen = () => {
      retry = 0;
      status.className = "status";
      status.textContent = "connected: updates live";
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      const msg = JSON.parse(ev.data);
      if (msg.type === "sessions") render(msg.sessions);
    };
    ws.onclose = () => {
      status.className = "status error";
      status.textContent = "cannot connect to the local avatar service at " + location.host +
        " (is `avatarkit serve` running?); retrying…";
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 1000 * retry);
    };
  }

  connect();
})();
