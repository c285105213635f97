// gevent-chat in the browser: the line protocol over a WebSocket at ./ws.
//
// One text frame is one line, without its newline, in both directions.  Every
// received line is put on the page as text (textContent, never HTML), so
// nothing a user says can become markup or script.  The rules below port the
// terminal client's: render.py's line kinds and nick colours (CRC-32 of the
// case-folded nick over the same palette), and reconnect.py's backoff
// (0.5 s doubling, capped at 30 s, equal jitter) and alternate nicks.
"use strict";

(() => {
  // -- ported from gevent_chat/client/render.py and reconnect.py -------------------

  const PALETTE = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];
  const BASE_DELAY = 0.5;
  const MAX_DELAY = 30.0;
  const MAX_NICK_CHARS = 32;

  const CRC_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    return table;
  })();

  function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  // Python's str.casefold, which JavaScript lacks: lower, upper, lower folds
  // the expansions (ẞ -> ss, ﬁ -> fi); casefold keeps no final sigma, folds
  // Cherokee to its capitals and leaves the dotless ı alone.  Checked against
  // Python for every code point Chromium knows.
  function fold(run) {
    return run
      .toLowerCase()
      .toUpperCase()
      .toLowerCase()
      .replace(/ς/g, "σ")
      .replace(/[\u13f8-\u13fd\uab70-\uabbf]/g, (c) => c.toUpperCase());
  }

  function casefold(text) {
    return text.replace(/[^\u0131]+/gu, fold);
  }

  const encoder = new TextEncoder();

  // The SGR colour code of a nick: render.nick_colour.
  function nickColour(nick) {
    return PALETTE[crc32(encoder.encode(casefold(nick))) % PALETTE.length];
  }

  const NICK = String.raw`[\p{L}\p{N}_][\p{L}\p{N}_.\-]*`;
  const HISTORY = /^\[\d\d:\d\d\] /;
  const PATTERNS = [
    ["notice", new RegExp(String.raw`^\*\*\* (?<text>.*)$`, "su")],
    ["private_out", new RegExp(String.raw`^-> \*(?<nick>${NICK})\* (?<text>.*)$`, "su")],
    ["private", new RegExp(String.raw`^\*(?<nick>${NICK})\* (?<text>.*)$`, "su")],
    ["action", new RegExp(String.raw`^\* (?<nick>${NICK}) (?<text>.*)$`, "su")],
    ["chat", new RegExp(String.raw`^(?<nick>${NICK}): (?<text>.*)$`, "su")],
  ];

  // render.classify: {kind, nick, text, stamp}.
  function classify(line) {
    let stamp = "";
    const h = HISTORY.exec(line);
    if (h) {
      stamp = h[0].slice(1, 6);
      line = line.slice(h[0].length);
    }
    for (const [kind, pattern] of PATTERNS) {
      const m = pattern.exec(line);
      if (m) return { kind, nick: m.groups.nick || "", text: m.groups.text, stamp };
    }
    return { kind: "plain", nick: "", text: line, stamp };
  }

  // Control and escape characters never reach the page, even from a server that keeps them.
  function sanitise(text) {
    return text.replace(/\t/g, " ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "");
  }

  function backoffDelay(attempt, rand) {
    const nominal = Math.min(MAX_DELAY, BASE_DELAY * 2 ** Math.min(attempt, 32));
    return nominal / 2 + (rand * nominal) / 2;
  }

  function alternateNick(nick, attempt) {
    if (attempt === 0) return nick;
    const suffix = attempt < 3 ? "_".repeat(attempt) : `_${attempt}`;
    return [...nick].slice(0, MAX_NICK_CHARS - suffix.length).join("") + suffix;
  }

  const isPasswordPrompt = (t) => /^password: ?$/i.test(t);
  const isNickPrompt = (t) => /nickname: ?$/i.test(t) && !t.startsWith("*");
  const welcomeNick = (t) => /^\*\*\* Welcome, (.+?)!/.exec(t)?.[1] ?? null;
  const refusalReason = (t) => (t.startsWith("*** ") && /taken|invalid/i.test(t) ? t.slice(4) : null);

  // -- the page --------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body,
    room: $("room"),
    topic: $("topic"),
    me: $("me"),
    status: $("status"),
    login: $("login"),
    nick: $("nick"),
    passwordRow: $("password-row"),
    password: $("password"),
    loginNote: $("login-note"),
    loginError: $("login-error"),
    chat: $("chat"),
    log: $("log"),
    users: $("users"),
    usersTitle: $("users-title"),
    userList: $("user-list"),
    usersToggle: $("users-toggle"),
    composer: $("composer"),
    input: $("input"),
    inputHint: $("input-hint"),
  };

  const MAX_LOG_LINES = 2000;
  const MAX_HISTORY = 200;
  const TITLE = "gevent-chat";
  // The server's --max-line-bytes (UTF-8 bytes of one line), written into the
  // page by the server; null when the page was not served by it.
  const MAX_LINE_BYTES = Number.parseInt(ui.body.dataset.maxLineBytes, 10) || null;

  const state = {
    ws: null,
    heard: false, // this connection has had a line from the server
    wanted: null, // the nick asked for; renames follow it
    nick: null, // the nick the server confirmed
    password: null,
    passwordSent: false,
    prompted: false, // the nickname prompt is waiting for an answer
    nickTry: 0,
    registered: false,
    everRegistered: false, // then a drop reconnects by itself
    room: "lobby",
    topic: "", // the room's topic, shown in the header
    users: new Map(), // casefold(nick) -> {nick, mark}
    whoAsked: [], // one per /who sent and not answered yet: true if the page asked (not shown)
    who: null, // a /who reply being collected: {room, count, names, quiet}
    quitting: false,
    stopped: false, // wrong password: do not retry
    retries: 0,
    retryTimer: null,
    pings: new Map(), // token -> {at, own}: own tokens are the page's, not shown
    pingSeq: 0,
    history: [],
    historyAt: 0,
    draft: "",
  };

  function setState(name, text) {
    ui.body.dataset.state = name;
    if (ui.status.textContent !== text) ui.status.textContent = text;
  }

  const notJoined = () => setState("idle", "not joined");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function nickSpan(nick) {
    return el("span", `nick c${nickColour(nick)}`, nick);
  }

  function hhmm(date) {
    return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
  }

  // Append one line to the log, as text only.
  function show(raw, extraClass) {
    const line = classify(sanitise(raw));
    const item = el("li", `line kind-${line.kind}${extraClass ? ` ${extraClass}` : ""}`);
    const stamp = el("span", line.stamp ? "stamp history" : "stamp", line.stamp || hhmm(new Date()));
    if (line.stamp) stamp.title = "said before you came";
    item.append(stamp);
    const text = el("span", "text", line.text);
    switch (line.kind) {
      case "notice":
        item.append(el("span", "marker", "*** "), text);
        break;
      case "chat":
        item.append(nickSpan(line.nick), el("span", "sep", ": "), text);
        break;
      case "action":
        item.append(el("span", "marker", "* "), nickSpan(line.nick), el("span", "sep", " "), text);
        break;
      case "private":
        item.append(el("span", "marker", "*"), nickSpan(line.nick), el("span", "marker", "* "), text);
        item.title = `private message from ${line.nick}`;
        break;
      case "private_out":
        item.append(el("span", "marker", "-> *"), nickSpan(line.nick), el("span", "marker", "* "), text);
        item.title = `private message to ${line.nick}`;
        break;
      default:
        item.append(text);
    }
    const log = ui.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(item);
    while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
    return line;
  }

  function note(text) {
    show(`*** ${text}`, "local");
  }

  // -- the header: where you are and who you are -----------------------------------

  // In the chat (or coming back to it) the header names the room and the nick;
  // otherwise the page's own name.
  function renderHeader() {
    const inChat = state.everRegistered;
    ui.room.textContent = inChat ? `#${state.room}` : TITLE;
    ui.me.textContent = inChat && state.nick ? state.nick : "";
    document.title = inChat ? `#${state.room} - ${TITLE}` : TITLE;
  }

  // -- who is here -----------------------------------------------------------------

  // One name of a /who reply: a channel mark (@ operator, + voice) and the nick.
  function member(name) {
    const m = /^([@+]?)(.*)$/su.exec(name);
    return { nick: m[2], mark: m[1] };
  }

  function renderUsers() {
    const members = [...state.users.values()].sort((a, b) => (casefold(a.nick) < casefold(b.nick) ? -1 : 1));
    ui.userList.replaceChildren(
      ...members.map(({ nick, mark }) => {
        const item = el("li");
        if (mark) item.append(el("span", "mark", mark));
        item.append(nickSpan(nick));
        if (state.nick && casefold(nick) === casefold(state.nick)) item.append(el("span", "you", " (you)"));
        return item;
      }),
    );
    ui.usersTitle.textContent = `In #${state.room} (${members.length})`;
    ui.usersToggle.textContent = `${members.length} user${members.length === 1 ? "" : "s"}`;
  }

  function setRoom(room) {
    state.room = room;
    renderHeader();
  }

  function setTopic(topic) {
    state.topic = topic;
    ui.topic.textContent = topic;
    ui.topic.title = topic;
    ui.topic.hidden = !topic;
  }

  function addUser(nick, mark = "") {
    state.users.set(casefold(nick), { nick, mark });
  }

  function removeUser(nick) {
    const gone = state.users.get(casefold(nick));
    state.users.delete(casefold(nick));
    return gone;
  }

  function renameUser(old, nick) {
    addUser(nick, removeUser(old)?.mark);
  }

  // The page asks /who itself to fill the user list; its answer is not shown.
  function askWho() {
    if (send("/who")) state.whoAsked.push(true);
  }

  // Follow the room and its members from the server's notices.  Returns true
  // for a line that is the page's own business (an answer to its /who).
  function track(text) {
    let m;
    if ((m = /^\*\*\* (\d+) users? in #(\S+): (.*)$/su.exec(text))) {
      const count = Number(m[1]);
      const names = m[3] ? m[3].split(", ") : [];
      let who = state.who;
      if (!who || who.room !== m[2] || who.count !== count || who.names.length >= count) {
        who = state.who = { room: m[2], count, names: [], quiet: state.whoAsked.shift() ?? false };
      }
      who.names.push(...names);
      if (who.names.length >= count) {
        setRoom(who.room);
        state.users = new Map(who.names.map(member).map((u) => [casefold(u.nick), u]));
        state.who = null;
      }
      renderUsers();
      return who.quiet;
    }
    if ((m = /^\*\*\* (?:topic: (.*) \(set by \S+\)|\S+ set the topic: (.*))$/su.exec(text))) {
      setTopic(m[1] ?? m[2]);
      return false;
    }
    if (/^\*\*\* \S+ cleared the topic$/u.test(text)) {
      setTopic("");
      return false;
    }
    if (/^\*\*\* \S+ (?:made \S+ an operator|removed \S+ as an operator|gave \S+ a voice|took \S+'s voice)$/u.test(text)) {
      askWho(); // the marks changed
      return false;
    }
    if ((m = /^\*\*\* you joined #(\S+)$/u.exec(text))) {
      setRoom(m[1]);
      setTopic("");
      state.users = new Map();
      if (state.nick) addUser(state.nick);
      askWho();
    } else if ((m = /^\*\*\* you are now known as (\S+)$/u.exec(text))) {
      if (state.nick) renameUser(state.nick, m[1]);
      else addUser(m[1]);
      state.nick = state.wanted = m[1];
      renderHeader();
    } else if ((m = /^\*\*\* (\S+) is now known as (\S+)$/u.exec(text))) {
      renameUser(m[1], m[2]);
    } else if ((m = /^\*\*\* (\S+) joined(?: #\S+)?$/u.exec(text))) {
      addUser(m[1]);
    } else if ((m = /^\*\*\* (\S+) left(?: #\S+| \(.*\))?$/su.exec(text))) {
      removeUser(m[1]);
    } else if ((m = /^\*\*\* (\S+) was kicked by \S+(?: \(.*\))?$/su.exec(text))) {
      removeUser(m[1]);
    } else {
      return false;
    }
    renderUsers();
    return false;
  }

  // -- the connection --------------------------------------------------------------

  // A line as it goes over the wire: one line, whatever was pasted.
  const wireLine = (line) => line.replace(/[\r\n]+/g, " ");
  const lineBytes = (line) => encoder.encode(wireLine(line)).length;

  function send(line) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(wireLine(line));
      return true;
    }
    return false;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    const url = new URL("ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    setState("connecting", "connecting…");
    let ws;
    try {
      ws = new WebSocket(url); // no subprotocol: text.ircv3.net would make /ws speak IRC
    } catch (err) {
      onClose(null, { code: 1006 });
      return;
    }
    state.ws = ws;
    state.heard = false;
    state.registered = false;
    state.prompted = false;
    state.passwordSent = false;
    state.whoAsked = [];
    state.who = null;
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data === "string") onLine(ev.data);
    });
    ws.addEventListener("close", (ev) => onClose(ws, ev));
  }

  // Wait `delay` seconds, saying how many are left (whole seconds, counted
  // down as they pass), then connect.
  function reconnectIn(delay) {
    const due = performance.now() + delay * 1000;
    const tick = () => {
      const left = due - performance.now();
      if (left <= 0) {
        connect();
        return;
      }
      const seconds = Math.ceil(left / 1000);
      setState("reconnecting", `reconnecting in ${seconds} s`);
      state.retryTimer = setTimeout(tick, left - (seconds - 1) * 1000);
    };
    tick();
  }

  function nickToClaim() {
    return state.wanted === null ? null : alternateNick(state.wanted, state.nickTry);
  }

  function answerPrompt() {
    const nick = nickToClaim();
    if (state.prompted && nick !== null && send(nick)) state.prompted = false;
  }

  function onLine(raw) {
    const text = sanitise(raw);
    state.heard = true;
    if (!state.registered) {
      onRegistrationLine(text);
      return;
    }
    if (isNickPrompt(text) || isPasswordPrompt(text)) return;
    let shown = text;
    const pong = /^\*\*\* pong (\S+)$/.exec(text);
    const ping = pong && state.pings.get(pong[1]);
    if (ping) {
      const lag = `(lag ${(performance.now() - ping.at).toFixed(1)} ms)`;
      shown = ping.own ? `*** pong ${lag}` : `${text} ${lag}`;
      state.pings.delete(pong[1]);
    }
    if (!track(text)) show(shown);
  }

  function onRegistrationLine(text) {
    if (isPasswordPrompt(text)) {
      if (state.password !== null && !state.passwordSent) {
        state.passwordSent = send(state.password);
      } else {
        state.stopped = true; // nothing to retry with until someone types it
        notJoined();
        showLogin({ error: "This server needs a password." });
        ui.passwordRow.hidden = false;
        ui.password.focus();
      }
      return;
    }
    if (isNickPrompt(text)) {
      state.prompted = true;
      answerPrompt();
      return;
    }
    if (text.trim() === "*** wrong password") {
      state.password = null;
      state.stopped = true;
      ui.password.value = "";
      showLogin({ error: "Wrong password." });
      ui.passwordRow.hidden = false;
      return;
    }
    const nick = welcomeNick(text);
    if (nick !== null) {
      onWelcome(nick, text);
      return;
    }
    const reason = refusalReason(text);
    if (reason !== null) {
      if (state.everRegistered && /taken/i.test(reason)) {
        state.nickTry += 1; // held, perhaps by our own old connection: try nick_
        answerPrompt();
      } else {
        state.wanted = null;
        notJoined(); // connected, and waiting for another nick
        showLogin({ error: reason });
        ui.nick.select();
      }
      return;
    }
    if (text.startsWith("*** ")) {
      if (state.everRegistered) show(text);
      else ui.loginError.textContent = text.slice(4);
    }
  }

  function onWelcome(nick, text) {
    const again = state.everRegistered;
    state.registered = state.everRegistered = true;
    state.nick = state.wanted = nick;
    state.retries = 0;
    state.nickTry = 0;
    state.quitting = false;
    try {
      localStorage.setItem("gevent-chat.nick", nick);
    } catch (err) {
      // private browsing: nothing to remember it in
    }
    ui.login.hidden = true;
    ui.chat.hidden = false;
    ui.composer.hidden = false;
    ui.usersToggle.hidden = false;
    setState("online", "online");
    show(text);
    if (again) {
      note(`registered again as ${nick}`);
      renderHeader();
      if (casefold(state.room) !== "lobby") {
        send(`/join ${state.room}`);
        return; // its "you joined" asks /who
      }
    }
    setRoom("lobby");
    state.users = new Map([[casefold(nick), { nick, mark: "" }]]);
    renderUsers();
    askWho();
    ui.input.focus();
  }

  function onClose(ws, ev) {
    if (ws !== null && ws !== state.ws) return;
    state.ws = null;
    const wasRegistered = state.registered;
    state.registered = false;
    if (state.quitting) {
      setState("left", "left");
      showLogin({ note: "You left the chat." });
      return;
    }
    if (state.stopped || !state.everRegistered) {
      // Reached, and then closed (a refusal, a wrong password): not joined.  Never reached: offline.
      if (state.heard) notJoined();
      else setState("offline", "offline");
      if (!wasRegistered) showLogin({ error: state.stopped ? ui.loginError.textContent : closeReason(ev) });
      return;
    }
    if (wasRegistered) note("connection lost");
    const delay = backoffDelay(state.retries, Math.random());
    state.retries += 1;
    reconnectIn(delay);
  }

  function closeReason(ev) {
    if (ui.loginError.textContent) return ui.loginError.textContent;
    return ev && ev.code === 1006 ? "Could not reach the server." : "The server closed the connection.";
  }

  // Back to the login form, with a calm note or an error.
  function showLogin({ note = "", error = "" }) {
    if (state.everRegistered && !state.quitting && !state.stopped) return;
    ui.login.hidden = false;
    ui.chat.hidden = true;
    ui.composer.hidden = true;
    ui.usersToggle.hidden = true;
    ui.loginNote.textContent = note;
    ui.loginError.textContent = error;
    if (state.quitting) {
      state.everRegistered = false;
      state.quitting = false;
    }
    renderHeader();
  }

  // -- input -----------------------------------------------------------------------

  ui.login.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const nick = ui.nick.value.trim();
    ui.loginNote.textContent = "";
    if (!nick) {
      ui.loginError.textContent = "Choose a nickname.";
      return;
    }
    state.wanted = nick;
    state.nickTry = 0;
    state.stopped = false;
    if (!ui.passwordRow.hidden) state.password = ui.password.value;
    ui.loginError.textContent = "";
    if (state.ws === null) {
      connect();
      return;
    }
    setState("connecting", "joining…");
    if (!state.passwordSent && state.password !== null && ui.passwordRow.hidden === false) {
      state.passwordSent = send(state.password);
    } else {
      answerPrompt();
    }
  });

  // Bytes the server would refuse the line by (0 if it fits, or no limit is known).
  function overLimit(line) {
    return MAX_LINE_BYTES === null ? 0 : Math.max(0, lineBytes(line) - MAX_LINE_BYTES);
  }

  // Say at once, while typing, that the line is too long to send.
  function checkLength() {
    const line = ui.input.value;
    const over = overLimit(line);
    ui.input.setAttribute("aria-invalid", String(over > 0));
    ui.inputHint.hidden = over === 0;
    ui.inputHint.textContent = over ? `${lineBytes(line)} bytes, ${over} over the limit of ${MAX_LINE_BYTES}` : "";
  }

  function sendUserLine(line) {
    const words = line.trim().split(/\s+/);
    const command = line.startsWith("/") && !line.startsWith("//") ? words[0].toLowerCase() : null;
    let wire = line;
    let ping = null;
    if (command === "/ping") {
      const own = words.length === 1; // the page picks a token, and keeps it to itself
      if (own) {
        state.pingSeq += 1;
        wire = `/ping lag${state.pingSeq}`;
      }
      ping = { token: own ? `lag${state.pingSeq}` : words[1], own };
    }
    if (overLimit(wire)) {
      note(`not sent: the line is ${lineBytes(wire)} bytes, the server takes at most ${MAX_LINE_BYTES}`);
      return false;
    }
    if (!send(wire)) {
      note("not connected: the line was not sent");
      return false;
    }
    if (ping) state.pings.set(ping.token, { at: performance.now(), own: ping.own });
    if (command === "/who") state.whoAsked.push(false);
    if (command === null) {
      show(`${state.nick}: ${line.startsWith("//") ? line.slice(1) : line}`, "self");
    } else if (command === "/me") {
      show(`* ${state.nick} ${line.slice(3).trimStart()}`, "self");
    } else if (command !== "/msg") {
      // /msg comes back from the server as "-> *nick* text".
      show(line, "kind-command self");
    }
    if (command === "/quit") state.quitting = true;
    return true;
  }

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const line = ui.input.value;
    if (!line.trim()) return;
    if (sendUserLine(line)) {
      if (state.history[state.history.length - 1] !== line) state.history.push(line);
      if (state.history.length > MAX_HISTORY) state.history.shift();
      ui.input.value = "";
      checkLength();
    }
    state.historyAt = state.history.length;
  });

  ui.input.addEventListener("input", checkLength);

  ui.input.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowUp" && ev.key !== "ArrowDown") return;
    const h = state.history;
    if (state.historyAt === h.length) state.draft = ui.input.value;
    const at = state.historyAt + (ev.key === "ArrowUp" ? -1 : 1);
    if (at < 0 || at > h.length) return;
    ev.preventDefault();
    state.historyAt = at;
    ui.input.value = at === h.length ? state.draft : h[at];
    ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
    checkLength();
  });

  ui.usersToggle.addEventListener("click", () => {
    const open = ui.users.classList.toggle("open");
    ui.usersToggle.setAttribute("aria-expanded", String(open));
  });

  try {
    ui.nick.value = localStorage.getItem("gevent-chat.nick") || "";
  } catch (err) {
    // no storage: start empty
  }

  // For tests and the curious: the ported rules.
  window.geventChat = Object.freeze({ nickColour, casefold, classify, backoffDelay, alternateNick, member, state });
})();
